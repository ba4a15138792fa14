/* Message change form of the Engage admin.
 *
 * - Live preview: as the content, variants, kind or App change, POST them to the staff-only
 *   preview endpoint and show the card the server rendered (content_render: sanitised HTML).
 * - Segment checkboxes: only the chosen App's segments are offered.
 * - Status buttons: confirm archiving, and warn before unsaved edits would be lost.
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 350;

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function value(form, name) {
    var element = form.querySelector('[name="' + name + '"]');
    return element ? element.value : null;
  }

  function fillSelect(select, options, chosen, blankLabel) {
    select.innerHTML = "";
    if (blankLabel !== undefined) {
      var blank = document.createElement("option");
      blank.value = "";
      blank.textContent = blankLabel;
      select.appendChild(blank);
    }
    options.forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    });
    select.value = chosen || "";
  }

  function setupPreview(block) {
    var form = block.closest("form");
    var textarea = block.querySelector("textarea");
    var url = block.getAttribute("data-preview-url");
    if (!form || !textarea || !url) return;
    var stage = block.querySelector(".engage-preview-stage");
    var error = block.querySelector(".engage-preview-error");
    var locale = block.querySelector(".engage-preview-locale");
    var variant = block.querySelector(".engage-preview-variant");
    var variantLabel = block.querySelector(".engage-preview-variant-label");
    var timer = null;
    var sequence = 0;

    function showError(text) {
      error.hidden = !text;
      error.textContent = text || "";
      block.classList.toggle("engage-invalid", Boolean(text));
    }

    function refresh() {
      var mine = ++sequence;
      var body = {
        app: value(form, "app"),
        object_id: block.getAttribute("data-object-id") || null,
        content: textarea.value,
        variants: value(form, "variants"),
        kind: value(form, "kind"),
        locale: locale.value || null,
        variant: variant.value || null
      };
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(form)},
        body: JSON.stringify(body)
      }).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (answer) {
        if (mine !== sequence) return;
        if (!answer.ok) {
          showError(answer.error);
          stage.classList.add("engage-stale");
          return;
        }
        showError(answer.variant_error || "");
        stage.classList.remove("engage-stale");
        stage.innerHTML = answer.html;  // rendered by the server; the body is sanitised there
        fillSelect(locale, answer.locales, answer.locale);
        fillSelect(variant, answer.variants, answer.variant, "base content");
        variantLabel.hidden = answer.variants.length === 0;
      }).catch(function (failure) {
        if (mine === sequence) showError("The preview could not be rendered (" + failure.message + ").");
      });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }

    textarea.addEventListener("input", later);
    ["variants", "kind", "app"].forEach(function (name) {
      var element = form.querySelector('[name="' + name + '"]');
      if (element) {
        element.addEventListener("input", later);
        element.addEventListener("change", later);
      }
    });
    locale.addEventListener("change", refresh);
    variant.addEventListener("change", refresh);
    refresh();
  }

  function setupSegments(form) {
    var app = form.querySelector('select[name="app"]');
    var boxes = form.querySelectorAll('input[name="audience_segments"][data-app]');
    if (!app || !boxes.length) return;
    function filter() {
      Array.prototype.forEach.call(boxes, function (box) {
        var mine = !app.value || box.getAttribute("data-app") === app.value;
        var row = box.closest("div") || box.parentNode;
        row.hidden = !mine;
        if (!mine && box.checked) {
          box.checked = false;
          box.dispatchEvent(new Event("change", {bubbles: true}));
        }
      });
    }
    app.addEventListener("change", filter);
    filter();
  }

  // Only the trigger fields that matter for the chosen trigger are shown.
  function setupTrigger(form) {
    var on = form.querySelector('select[name="trigger_on"]');
    if (!on) return;
    function row(name) {
      var field = form.querySelector('[name="' + name + '"]');
      return field ? field.closest(".form-row") : null;
    }
    function toggle() {
      var eventRow = row("trigger_event");
      var urlRow = row("trigger_url_op");
      if (eventRow && !eventRow.classList.contains("errors")) eventRow.hidden = on.value !== "event";
      if (urlRow && !urlRow.querySelector(".errorlist")) {
        urlRow.hidden = on.value !== "page_view" && on.value !== "event";
      }
    }
    on.addEventListener("change", toggle);
    toggle();
  }

  function setupStatusForms(mainForm) {
    var dirty = false;
    if (mainForm) {
      mainForm.addEventListener("input", function () { dirty = true; });
      mainForm.addEventListener("change", function () { dirty = true; });
    }
    Array.prototype.forEach.call(document.querySelectorAll(".engage-status-form"), function (form) {
      form.addEventListener("submit", function (event) {
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) {
          event.preventDefault();
          return;
        }
        if (dirty && !window.confirm("You have unsaved changes in the form below. Change the status anyway (your edits will be lost)?")) {
          event.preventDefault();
        }
      });
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".engage-content"), setupPreview);
    var mainForm = document.getElementById("message_form");
    if (mainForm) {
      setupSegments(mainForm);
      setupTrigger(mainForm);
    }
    setupStatusForms(mainForm);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
