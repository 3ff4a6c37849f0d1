// xterm.js's DOM renderer styles the terminal (cell sizes, colours) with
// <style> elements it writes into the page. The console's
// Content-Security-Policy (style-src 'self', no inline styles) refuses to
// apply them, so this mirrors their text into constructed stylesheets
// (document.adoptedStyleSheets), which the policy does not cover: the
// styles are the library's own, never the page's data.
(function () {
  "use strict";
  var mirrored = [];

  function adopt(element) {
    if (!window.CSSStyleSheet || !("adoptedStyleSheets" in document)) {
      return;
    }
    var pending = false;
    function sync() {
      pending = false;
      var styles = element.querySelectorAll("style");
      var sheets = [];
      for (var i = 0; i < styles.length; i++) {
        var text = styles[i].textContent;
        var entry = null;
        for (var j = 0; j < mirrored.length; j++) {
          if (mirrored[j].style === styles[i]) {
            entry = mirrored[j];
          }
        }
        if (!entry) {
          entry = { style: styles[i], sheet: new CSSStyleSheet(), text: null };
          mirrored.push(entry);
        }
        if (entry.text !== text) {
          entry.sheet.replaceSync(text);
          entry.text = text;
        }
        sheets.push(entry.sheet);
      }
      var own = mirrored.map(function (m) { return m.sheet; });
      var others = document.adoptedStyleSheets.filter(function (s) {
        return own.indexOf(s) < 0;
      });
      document.adoptedStyleSheets = others.concat(sheets);
    }
    function schedule() {
      if (!pending) {
        pending = true;
        window.requestAnimationFrame(sync);
      }
    }
    new MutationObserver(schedule).observe(element, {
      childList: true,
      subtree: true,
      characterData: true,
    });
    sync();
  }

  window.OperonXtermStyles = { adopt: adopt };
})();
