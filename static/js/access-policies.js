// Access policies rule form: the group pickers (type-ahead search of Office 365 groups by name through
// /admin/access-policies/groups) and the criteria shown only for allow and deny rules. Without this script the
// form still works: a group typed by its exact name is looked up when the form is saved.
"use strict";
(function () {
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function setUpPicker(picker) {
    const kind = picker.dataset.kind;
    const search = picker.querySelector(".picker-search");
    const options = picker.querySelector(".picker-options");
    const status = picker.querySelector(".picker-status");
    const chosen = picker.querySelector(".picker-chosen");
    let timer = null;
    let asked = 0;

    function hide() { options.hidden = true; search.setAttribute("aria-expanded", "false"); }

    function say(text, bad) {
      status.textContent = text;
      status.classList.toggle("text-danger", Boolean(bad));
    }

    function add(group) {
      const box = chosen.querySelector('input[type="checkbox"][value="' + CSS.escape(group.id) + '"]');
      if (box) {
        box.checked = true;
      } else {
        const id = kind + "-" + group.id;
        const chip = el("div", "form-check border rounded px-2 py-1 m-0 group-chip");
        const check = el("input", "form-check-input ms-0 me-1");
        check.type = "checkbox"; check.name = kind; check.value = group.id; check.id = id; check.checked = true;
        const label = el("input");
        label.type = "hidden"; label.name = "group_label"; label.value = group.id + "|" + group.name;
        const text = el("label", "form-check-label", group.name);
        text.htmlFor = id;
        chip.append(check, label, text);
        chosen.append(chip);
      }
      search.value = "";
      hide();
      say("Added " + group.name + ".", false);
      search.focus();
    }

    function show(groups, message) {
      options.replaceChildren();
      if (message) { options.append(el("div", "list-group-item small text-muted", message)); }
      groups.forEach(function (group) {
        const item = el("button", "list-group-item list-group-item-action py-1");
        item.type = "button";
        item.setAttribute("role", "option");
        item.append(el("div", "group-option-name", group.name));
        if (group.detail) { item.append(el("div", "small text-muted", group.detail)); }
        item.addEventListener("click", function () { add(group); });
        options.append(item);
      });
      options.hidden = false;
      search.setAttribute("aria-expanded", "true");
    }

    function lookUp() {
      const text = search.value.trim();
      if (!text) { hide(); say("", false); return; }
      const ticket = ++asked;
      say("Searching…", false);
      const source = document.getElementById("picker-datasource");
      const where = source ? "&datasource=" + encodeURIComponent(source.value) : "";
      fetch(picker.dataset.url + "?q=" + encodeURIComponent(text) + where, {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (answer) {
        if (ticket !== asked) { return; }  // a newer search is on its way
        if (!answer.ok) {
          hide();
          say(answer.body.error ? answer.body.error.message : "The search failed; try again.", true);
          return;
        }
        const groups = answer.body.groups || [];
        say(groups.length ? groups.length + " group(s) found." : "", false);
        show(groups, groups.length ? "" : "No group starts with that.");
      }).catch(function () {
        if (ticket === asked) { hide(); say("Could not search; check the connection and try again.", true); }
      });
    }

    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(lookUp, 250);
    });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { hide(); }
      const first = options.hidden ? null : options.querySelector("button");
      if (event.key === "ArrowDown" && first) { event.preventDefault(); first.focus(); }
      if (event.key === "Enter" && first) { event.preventDefault(); first.click(); }
    });
    options.addEventListener("keydown", function (event) {
      const items = Array.from(options.querySelectorAll("button"));
      const at = items.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && at >= 0 && at < items.length - 1) { event.preventDefault(); items[at + 1].focus(); }
      if (event.key === "ArrowUp") { event.preventDefault(); (at > 0 ? items[at - 1] : search).focus(); }
      if (event.key === "Escape") { hide(); search.focus(); }
    });
    document.addEventListener("click", function (event) { if (!picker.contains(event.target)) { hide(); } });
  }

  document.querySelectorAll(".group-picker").forEach(setUpPicker);

  // Only the fields that apply: a public rule needs no sign-in, so it has no criteria.
  const form = document.getElementById("rule-form");
  const criteria = document.getElementById("criteria");
  if (form && criteria) {
    const note = document.getElementById("criteria-public-note");
    const update = function () {
      const checked = form.querySelector('input[name="action"]:checked');
      criteria.hidden = Boolean(checked && checked.value === "public");
    };
    if (note) { note.hidden = true; }
    form.querySelectorAll('input[name="action"]').forEach(function (radio) { radio.addEventListener("change", update); });
    update();
    form.dataset.ready = "1";
  }
})();
