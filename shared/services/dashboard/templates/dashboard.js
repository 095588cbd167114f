(function () {
  var sel = document.getElementById("store-filter");
  function show(value) {
    var els = document.querySelectorAll("[data-store]");
    for (var i = 0; i < els.length; i++) {
      els[i].hidden = value !== "" && els[i].getAttribute("data-store") !== value;
    }
  }
  if (sel) {
    var m = /^#store=(.+)$/.exec(window.location.hash || "");
    if (m) {
      var wanted = "";
      try { wanted = decodeURIComponent(m[1]); } catch (e) { wanted = ""; }
      for (var i = 0; i < sel.options.length; i++) {
        if (sel.options[i].value === wanted) { sel.value = wanted; }
      }
    }
    show(sel.value);
    sel.addEventListener("change", function () {
      show(sel.value);
      try { window.location.hash = sel.value ? "store=" + encodeURIComponent(sel.value) : ""; } catch (e) {}
    });
  }
  document.documentElement.setAttribute("data-js", "ready");
})();
