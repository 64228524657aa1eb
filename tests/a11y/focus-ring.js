// Each focus stop of the page: its ring (outline) is drawn and reaches 3:1 against the background around it
// (WCAG 2.4.7 and 1.4.11). Evaluated by tests/test_accessibility.py after a Tab key press, so that focus()
// shows the ring as keyboard navigation would.
(() => {
  const parse = (c) => { const m = c.match(/[\d.]+/g) || []; return m.map(Number); };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const backgroundOf = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length >= 3 && (c.length === 3 || c[3] > 0.5)) { return c.slice(0, 3); }
    }
    return [255, 255, 255];
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    ' "' + (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 30) + '"';
  const stops = [...document.querySelectorAll(
    'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea, summary, [tabindex="0"]')]
    .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden');
  const bad = [];
  for (const el of stops) {
    el.focus({ preventScroll: true });
    if (document.activeElement !== el) { continue; }
    const style = getComputedStyle(el);
    const width = parseFloat(style.outlineWidth) || 0;
    if (style.outlineStyle === 'none' || width < 2) { bad.push(name(el) + ': no focus ring'); continue; }
    const inset = parseFloat(style.outlineOffset) < 0;
    const around = backgroundOf(inset ? el : el.parentElement);
    const contrast = ratio(parse(style.outlineColor).slice(0, 3), around);
    if (contrast < 3) { bad.push(name(el) + ': focus ring ' + contrast.toFixed(2) + ':1'); }
  }
  if (document.activeElement) { document.activeElement.blur(); }
  return { checked: stops.length, bad };
})
