// A form sent back with errors: the first invalid field has the focus, and each invalid field names (aria-describedby)
// an error message that says something; no error message is left tied to no field. Used by tests/test_accessibility.py.
(() => {
  const invalid = [...document.querySelectorAll('main [aria-invalid="true"]')];
  const problems = [];
  if (!invalid.length) { problems.push('no field is marked aria-invalid'); }
  else if (document.activeElement !== invalid[0]) {
    problems.push('focus is on ' + (document.activeElement ? document.activeElement.tagName + '#' + document.activeElement.id : 'nothing') +
                  ', not on the first invalid field #' + invalid[0].id);
  }
  for (const el of invalid) {
    const holder = el.getAttribute('aria-describedby') ? el : el.closest('fieldset[aria-describedby]');
    const ids = holder ? holder.getAttribute('aria-describedby').split(/\s+/) : [];
    const errors = ids.map((id) => document.getElementById(id)).filter((n) => n && n.classList.contains('invalid-feedback'));
    if (!errors.length || !errors.every((n) => n.textContent.trim())) { problems.push('#' + el.id + ' names no error message'); }
  }
  for (const message of document.querySelectorAll('main .invalid-feedback')) {
    if (!message.id || !document.querySelector('[aria-describedby~="' + message.id + '"]')) {
      problems.push('error "' + message.textContent.trim() + '" is tied to no field');
    }
  }
  return problems;
})
