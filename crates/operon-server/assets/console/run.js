// The run page, live: follows /commands/{id}/events (the API's live feed)
// and appends each node's output and updates statuses. Without it the page
// still shows everything stored; "Refresh" reloads it.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || run.dataset.running !== "true" || !window.EventSource) {
    return;
  }
  var FINAL = ["Success", "Failed", "TimedOut", "Cancelled", "Undeliverable"];

  function section(nodeId) {
    return document.getElementById("node-" + nodeId);
  }

  function setStatus(element, status) {
    element.textContent = status;
    element.className = element.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + status;
  }

  // The feed replays its backlog on every (re)connection: output of nodes
  // still running starts over from it, so nothing shows twice.
  function clearRunning() {
    var nodes = run.querySelectorAll(".node-run");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].dataset.final !== "true") {
        var outputs = nodes[i].querySelectorAll("pre.output");
        for (var j = 0; j < outputs.length; j++) {
          outputs[j].textContent = "";
        }
      }
    }
  }

  function onOutput(event) {
    var node = section(event.node_id);
    if (!node || node.dataset.final === "true") {
      return;
    }
    var pre = node.querySelector('pre[data-stream="' + event.stream + '"]');
    if (pre) {
      pre.textContent += event.data;
    }
  }

  function onStatus(event) {
    var node = section(event.node_id);
    if (!node) {
      return;
    }
    setStatus(node.querySelector(".node-status"), event.status);
    var exit = node.querySelector(".node-exit");
    if (exit && event.exit_code !== null && event.exit_code !== undefined) {
      exit.textContent = String(event.exit_code);
    }
    if (FINAL.indexOf(event.status) >= 0) {
      node.dataset.final = "true";
    }
  }

  function onDone(event, source) {
    source.close();
    setStatus(document.getElementById("run-status"), event.status);
    run.dataset.running = "false";
    var cancel = document.getElementById("cancel");
    if (cancel) {
      cancel.hidden = true;
    }
  }

  var source = new EventSource(run.dataset.events);
  source.onopen = clearRunning;
  source.onmessage = function (message) {
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (event.event === "output") {
      onOutput(event);
    } else if (event.event === "status") {
      onStatus(event);
    } else if (event.event === "done") {
      onDone(event, source);
    }
  };
})();
