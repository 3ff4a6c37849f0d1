// The terminal page: an xterm.js terminal on the console's session
// WebSocket (/sessions/connect), speaking operon_proto::session:
//
// - binary frames [kind u8][channel u32 BE][payload]: 0 Data, 1 Window
//   (a u32 BE credit), 2 Eof; the terminal is channel 0;
// - text frames: JSON ClientMessage out ({"type":"resize",cols,rows}) and
//   SessionEvent in (started, closed, ended).
//
// Flow control is end to end: we send at most the window the server
// credited us, and credit back each output frame once xterm.js has
// processed it (its write callback), so a busy browser slows the program.
(function () {
  "use strict";
  var screen = document.getElementById("terminal");
  var statusLine = document.getElementById("terminal-status");
  if (!screen || !window.Terminal || !window.WebSocket) {
    if (statusLine) {
      statusLine.textContent = "This browser cannot run the terminal.";
    }
    return;
  }
  var DATA = 0, WINDOW = 1, CHANNEL = 0, MAX_FRAME = 32 * 1024;

  var term = new window.Terminal({
    cursorBlink: true,
    convertEol: false,
    scrollback: 5000,
    fontFamily: "ui-monospace, Menlo, Consolas, monospace",
  });
  var fit = window.FitAddon ? new window.FitAddon.FitAddon() : null;
  if (fit) {
    term.loadAddon(fit);
  }
  term.open(screen);
  if (window.OperonXtermStyles) {
    window.OperonXtermStyles.adopt(screen);
  }
  if (fit) {
    try {
      fit.fit();
    } catch (e) {
      // Not laid out yet: the default 80x24 it is.
    }
  }

  function say(text, error) {
    statusLine.textContent = text;
    statusLine.className = error ? "error" : "";
  }

  var params = new URLSearchParams();
  params.set("node", screen.dataset.node);
  var optional = {
    user: screen.dataset.user,
    idle_timeout: screen.dataset.idleTimeout,
    max_duration: screen.dataset.maxDuration,
  };
  Object.keys(optional).forEach(function (key) {
    if (optional[key]) {
      params.set(key, optional[key]);
    }
  });
  params.set("cols", String(term.cols));
  params.set("rows", String(term.rows));
  params.set("term", "xterm-256color");
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + window.location.host + "/sessions/connect?" + params.toString());
  ws.binaryType = "arraybuffer";

  var sendWindow = Number(screen.dataset.window) || 0;
  var queue = []; // Uint8Arrays waiting for credit
  var ended = false;
  var encoder = new TextEncoder();

  function frame(kind, payload) {
    var bytes = new Uint8Array(5 + payload.length);
    bytes[0] = kind;
    new DataView(bytes.buffer).setUint32(1, CHANNEL);
    bytes.set(payload, 5);
    return bytes;
  }

  function credit(count) {
    if (ws.readyState !== WebSocket.OPEN || count === 0) {
      return;
    }
    var payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, count);
    ws.send(frame(WINDOW, payload));
  }

  function flush() {
    while (queue.length > 0 && sendWindow > 0 && ws.readyState === WebSocket.OPEN) {
      var next = queue[0];
      var size = Math.min(next.length, sendWindow, MAX_FRAME);
      ws.send(frame(DATA, next.subarray(0, size)));
      sendWindow -= size;
      if (size === next.length) {
        queue.shift();
      } else {
        queue[0] = next.subarray(size);
      }
    }
  }

  function input(bytes) {
    if (ended || bytes.length === 0) {
      return;
    }
    queue.push(bytes);
    flush();
  }

  term.onData(function (text) {
    input(encoder.encode(text));
  });
  term.onBinary(function (text) {
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) {
      bytes[i] = text.charCodeAt(i) & 0xff;
    }
    input(bytes);
  });
  term.onResize(function (size) {
    if (ws.readyState === WebSocket.OPEN && !ended) {
      ws.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
    }
  });
  window.addEventListener("resize", function () {
    if (fit) {
      try {
        fit.fit();
      } catch (e) {
        // Hidden: keep the size.
      }
    }
  });

  function onEvent(event) {
    if (event.type === "started") {
      var who = event.user ? " as " + event.user : "";
      say("Connected to " + event.node + who + " · session " + event.session_id);
      screen.dataset.session = event.session_id;
      term.focus();
    } else if (event.type === "closed" && event.error) {
      term.write("\r\n[" + event.error + "]\r\n");
    } else if (event.type === "ended") {
      ended = true;
      var exit = event.exit_code === undefined || event.exit_code === null
        ? "" : " (exit status " + event.exit_code + ")";
      say("Session ended: " + event.reason + exit + ".");
      term.options.disableStdin = true;
      term.options.cursorBlink = false;
      linkToSession();
    }
  }

  function linkToSession() {
    if (!screen.dataset.session) {
      return;
    }
    var link = document.createElement("a");
    link.href = "/sessions/" + encodeURIComponent(screen.dataset.session);
    link.textContent = "Session page and recording";
    statusLine.appendChild(document.createTextNode(" "));
    statusLine.appendChild(link);
  }

  ws.onmessage = function (message) {
    if (typeof message.data === "string") {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      onEvent(event);
      return;
    }
    var bytes = new Uint8Array(message.data);
    if (bytes.length < 5) {
      return;
    }
    var view = new DataView(message.data);
    var kind = bytes[0];
    if (view.getUint32(1) !== CHANNEL) {
      return;
    }
    if (kind === DATA) {
      var data = bytes.subarray(5);
      // Credit once xterm.js has taken the bytes in, not before.
      term.write(data, function () {
        credit(data.length);
      });
    } else if (kind === WINDOW && bytes.length === 9) {
      sendWindow += view.getUint32(5);
      flush();
    }
    // EOF: the terminal's output ended; "ended" follows.
  };
  ws.onclose = function () {
    if (!ended) {
      ended = true;
      term.options.disableStdin = true;
      say(
        screen.dataset.session
          ? "The connection to the server was lost; the session ends with it."
          : "The terminal could not be opened (refused, or the node went away). Reload the page to see why.",
        true
      );
      linkToSession();
    }
  };
})();
