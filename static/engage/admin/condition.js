/* Live condition panel of the Engage admin (segments and campaign audiences).
 *
 * Each `.engage-condition` block holds a textarea with the condition's JSON and a panel. As the
 * condition (or one of the fields named in data-extra-fields) changes, the block POSTs to its
 * data-preview-url (a staff-only, CSRF-protected admin endpoint) and shows the answer: the
 * condition in words, the tree with each problem at its node, and how many people match now.
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 400;

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function fieldValue(form, name) {
    var elements = form.querySelectorAll('[name="' + name + '"]');
    if (!elements.length) return null;
    var first = elements[0];
    if (first.tagName === "SELECT" && first.multiple) {
      return Array.prototype.map.call(first.selectedOptions, function (o) { return o.value; });
    }
    if (first.type === "checkbox") {
      return Array.prototype.filter.call(elements, function (e) { return e.checked; })
        .map(function (e) { return e.value; });
    }
    return first.value;
  }

  function setText(element, text) {
    if (element) element.textContent = text;
  }

  function setup(block) {
    var form = block.closest("form");
    var textarea = block.querySelector("textarea");
    var url = block.getAttribute("data-preview-url");
    if (!form || !textarea || !url) return;
    var extra = JSON.parse(block.getAttribute("data-extra-fields") || "[]");
    var words = block.querySelector(".engage-condition-words");
    var tree = block.querySelector(".engage-condition-tree");
    var number = block.querySelector(".engage-count-number");
    var note = block.querySelector(".engage-count-note");
    var sample = block.querySelector(".engage-count-sample");
    var keepTree = block.getAttribute("data-keep-tree") === "1";
    var timer = null;
    var sequence = 0;

    function render(answer) {
      if (!keepTree) {
        tree.innerHTML = answer.tree_html;  // built by the server with every value escaped
        tree.classList.toggle("engage-has-errors", answer.errors.length > 0);
        if (answer.description) {
          setText(words, answer.description);
        } else {
          words.innerHTML = "";
          var span = document.createElement("span");
          span.className = "engage-muted";
          span.textContent = answer.errors.length
            ? "Fix the problems below to see it in words."
            : "…";
          words.appendChild(span);
        }
      }
      keepTree = false;
      block.classList.toggle("engage-invalid", answer.errors.length > 0);
      if (answer.count === null || answer.count === undefined) {
        setText(number, "—");
        setText(note, answer.message || (answer.errors.length ? "fix the condition to count" : ""));
        setText(sample, "");
        return;
      }
      setText(number, answer.count.toLocaleString() + (answer.count === 1 ? " person" : " people"));
      setText(note, answer.note || (answer.took_ms !== undefined ? "counted in " + answer.took_ms + " ms" : ""));
      setText(sample, answer.sample && answer.sample.length ? "e.g. " + answer.sample.join(", ") : "");
    }

    function refresh() {
      var body = {condition: textarea.value, object_id: block.getAttribute("data-object-id") || null};
      extra.forEach(function (name) { body[name] = fieldValue(form, name); });
      var mine = ++sequence;
      block.classList.add("engage-busy");
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(form)},
        body: JSON.stringify(body)
      }).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (answer) {
        if (mine === sequence) render(answer);
      }).catch(function (error) {
        if (mine !== sequence) return;
        setText(number, "—");
        setText(note, "could not count (" + error.message + ")");
      }).finally(function () {
        if (mine === sequence) block.classList.remove("engage-busy");
      });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }

    textarea.addEventListener("input", later);
    extra.forEach(function (name) {
      Array.prototype.forEach.call(form.querySelectorAll('[name="' + name + '"]'), function (el) {
        el.addEventListener("change", later);
        el.addEventListener("input", later);
      });
    });
    refresh();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".engage-condition"), setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
