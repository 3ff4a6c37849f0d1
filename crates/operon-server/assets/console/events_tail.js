// The live tail of a bus: follows the page's stream (the API's tail feed)
// and shows each event as indented JSON, newest first, keeping the last
// 200. Without it the page says where the raw stream is.
(function () {
  "use strict";
  var KEPT = 200;
  var tail = document.getElementById("tail");
  if (!tail || !tail.dataset.stream || !window.EventSource) {
    return;
  }
  var list = document.getElementById("tail-events");
  var status = document.getElementById("tail-status");
  var clear = document.getElementById("tail-clear");
  var received = 0;

  function say(text) {
    status.textContent = text;
  }

  function add(item) {
    list.insertBefore(item, list.firstChild);
    while (list.children.length > KEPT) {
      list.removeChild(list.lastChild);
    }
  }

  function show(data) {
    var text = data;
    try {
      text = JSON.stringify(JSON.parse(data), null, 2);
    } catch (e) {
      // Not JSON: shown as it came.
    }
    var item = document.createElement("li");
    var pre = document.createElement("pre");
    pre.className = "output";
    pre.textContent = text;
    item.appendChild(pre);
    add(item);
    received += 1;
    say("Live: " + received + " event" + (received === 1 ? "" : "s") + " received.");
  }

  clear.hidden = false;
  clear.addEventListener("click", function () {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
  });

  var source = new EventSource(tail.dataset.stream);
  source.onopen = function () {
    say("Live: waiting for events (" + received + " received).");
  };
  source.onerror = function () {
    say("The stream was interrupted; reconnecting…");
  };
  source.onmessage = function (message) {
    show(message.data);
  };
  source.addEventListener("lagged", function (message) {
    var item = document.createElement("li");
    item.className = "error";
    item.textContent = message.data + " events were missed: the page fell behind.";
    add(item);
  });
})();
