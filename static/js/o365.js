// Office 365 operation pages: the type-ahead user picker (calls the JSON API with the session) and the mail
// nickname offered from a group's display name. A file, not inline: the Content-Security-Policy forbids inline script.
"use strict";
(function () {
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function chip(name, id, label) {
    const span = el("span", "badge text-bg-light border picker-chip", label + " ");
    const hidden = el("input");
    hidden.type = "hidden"; hidden.name = name; hidden.value = id;
    const remove = el("button", "btn-close btn-close-sm picker-remove");
    remove.type = "button"; remove.setAttribute("aria-label", "Remove " + label);
    span.prepend(hidden); span.append(remove);
    return span;
  }

  function setUpPicker(picker) {
    const search = picker.querySelector(".picker-search");
    const options = picker.querySelector(".picker-options");
    const value = picker.querySelector(".picker-value");
    const chosen = picker.querySelector(".picker-chosen");
    const multiple = picker.dataset.pickerMultiple === "1";
    const name = picker.dataset.pickerName;
    let timer = null;
    let asked = 0;

    function hide() { options.hidden = true; search.setAttribute("aria-expanded", "false"); }

    function secondary(item) {
      return item.user_principal_name || item.mail || item.mail_nickname || "";
    }

    function pick(user) {
      const label = (user.display_name || secondary(user)) + " (" + secondary(user) + ")";
      if (multiple) {
        if (!chosen.querySelector('input[value="' + user.id + '"]')) { chosen.append(chip(name, user.id, label)); }
        search.value = "";
      } else {
        value.value = user.id;
        search.value = label;
        chosen.replaceChildren(el("span", "small text-success picker-selected", "Selected: " + label));
      }
      hide();
      search.focus();
    }

    function show(users, message) {
      options.replaceChildren();
      if (message) {
        options.append(el("div", "list-group-item small text-muted", message));
      }
      users.forEach(function (user) {
        const item = el("button", "list-group-item list-group-item-action py-1");
        item.type = "button";
        item.setAttribute("role", "option");
        item.append(el("div", "", user.display_name || secondary(user)));
        item.append(el("div", "small text-muted", secondary(user)));
        item.addEventListener("click", function () { pick(user); });
        options.append(item);
      });
      options.hidden = false;
      search.setAttribute("aria-expanded", "true");
    }

    function lookUp() {
      const text = search.value.trim();
      if (!text) { hide(); return; }
      const ticket = ++asked;
      const url = picker.dataset.pickerUrl;
      fetch(url + (url.indexOf("?") < 0 ? "?" : "&") + "page_size=8&q=" + encodeURIComponent(text), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (answer) {
        if (ticket !== asked) { return; }  // a newer search is on its way
        if (!answer.ok) { show([], answer.body.error ? answer.body.error.message : "Search failed."); return; }
        const items = answer.body.users || answer.body.groups || [];
        show(items, items.length ? "" : "Nothing starts with that.");
      }).catch(function () {
        if (ticket === asked) { show([], "Could not search; check the connection and try again."); }
      });
    }

    search.addEventListener("input", function () {
      if (!multiple) { value.value = ""; chosen.replaceChildren(); }
      clearTimeout(timer);
      timer = setTimeout(lookUp, 250);
    });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { hide(); }
      if (event.key === "ArrowDown" && !options.hidden) {
        const first = options.querySelector("button");
        if (first) { event.preventDefault(); first.focus(); }
      }
      if (event.key === "Enter" && !options.hidden) {
        const first = options.querySelector("button");
        if (first) { event.preventDefault(); first.click(); }
      }
    });
    chosen.addEventListener("click", function (event) {
      if (event.target.classList.contains("picker-remove")) { event.target.closest(".picker-chip").remove(); }
    });
    document.addEventListener("click", function (event) { if (!picker.contains(event.target)) { hide(); } });
  }

  document.querySelectorAll(".picker").forEach(setUpPicker);

  // Create Group: offer the mail nickname from the display name until the nickname is typed by hand.
  const displayName = document.querySelector("#create-group-form #display_name");
  const nickname = document.querySelector("#create-group-form #mail_nickname");
  if (displayName && nickname) {
    let edited = nickname.value !== "";
    nickname.addEventListener("input", function () { edited = nickname.value !== ""; });
    const offer = function () {
      if (edited) { return; }
      nickname.value = displayName.value.normalize("NFKD").replace(/[^\x00-\x7f]/g, "").toLowerCase()
        .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64).replace(/-+$/, "");
    };
    displayName.addEventListener("input", offer);
    offer();  // a name typed before this script ran
  }
})();
