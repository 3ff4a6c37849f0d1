// The session page's recording player: fetches the session's asciicast v2
// recording (/sessions/{id}/recording, the server checks its digest against
// the audit trail) and replays its output into an xterm.js terminal of the
// recorded size, with pause, restart, skip to end and speed. Pauses longer
// than IDLE_LIMIT seconds are shortened to it, as asciinema's players do.
(function () {
  "use strict";
  var section = document.getElementById("player");
  var statusLine = document.getElementById("player-status");
  if (!section || !window.Terminal || !window.fetch) {
    if (statusLine) {
      statusLine.textContent = "This browser cannot play the recording.";
    }
    return;
  }
  var IDLE_LIMIT = 2;
  var playButton = document.getElementById("player-play");
  var restartButton = document.getElementById("player-restart");
  var endButton = document.getElementById("player-end");
  var speedSelect = document.getElementById("player-speed");
  var screen = document.getElementById("player-screen");

  var term = null;
  var header = null;
  var events = []; // [seconds, "o" | "r", data]
  var next = 0; // index of the next event
  var timer = null;
  var playing = false;

  function say(text, error) {
    statusLine.textContent = text;
    statusLine.className = error ? "error" : "";
  }

  function parse(text) {
    var lines = text.split("\n").filter(function (l) { return l.trim() !== ""; });
    header = JSON.parse(lines[0]);
    if (header.version !== 2) {
      throw new Error("not an asciicast v2 recording");
    }
    events = [];
    for (var i = 1; i < lines.length; i++) {
      var event = JSON.parse(lines[i]);
      if (event[1] === "o" || event[1] === "r") {
        events.push(event);
      }
    }
  }

  function apply(event) {
    if (event[1] === "o") {
      term.write(event[2]);
    } else {
      var size = /^(\d+)x(\d+)$/.exec(event[2]);
      if (size) {
        term.resize(Number(size[1]), Number(size[2]));
      }
    }
  }

  function finished() {
    playing = false;
    timer = null;
    playButton.textContent = "Play";
    say("Played to the end.");
    section.dataset.done = "true";
  }

  function step() {
    timer = null;
    if (!playing) {
      return;
    }
    if (next >= events.length) {
      finished();
      return;
    }
    var now = events[next][0];
    apply(events[next]);
    next++;
    if (next >= events.length) {
      finished();
      return;
    }
    var gap = Math.min(Math.max(events[next][0] - now, 0), IDLE_LIMIT);
    timer = window.setTimeout(step, (gap * 1000) / Number(speedSelect.value));
  }

  function play() {
    if (next >= events.length) {
      restart();
    }
    playing = true;
    playButton.textContent = "Pause";
    say("Playing…");
    section.dataset.done = "false";
    step();
  }

  function pause() {
    playing = false;
    if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
    playButton.textContent = "Play";
    say("Paused.");
  }

  function restart() {
    pause();
    term.reset();
    term.resize(header.width || 80, header.height || 24);
    next = 0;
  }

  playButton.addEventListener("click", function () {
    if (playing) {
      pause();
    } else {
      play();
    }
  });
  restartButton.addEventListener("click", function () {
    restart();
    play();
  });
  endButton.addEventListener("click", function () {
    pause();
    while (next < events.length) {
      apply(events[next]);
      next++;
    }
    finished();
  });

  window
    .fetch(section.dataset.recording, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) {
        throw new Error("the server answered " + response.status);
      }
      return response.text();
    })
    .then(function (text) {
      parse(text);
      term = new window.Terminal({
        cols: header.width || 80,
        rows: header.height || 24,
        disableStdin: true,
        cursorBlink: false,
        scrollback: 5000,
        fontFamily: "ui-monospace, Menlo, Consolas, monospace",
      });
      term.open(screen);
      if (window.OperonXtermStyles) {
        window.OperonXtermStyles.adopt(screen);
      }
      [playButton, restartButton, endButton].forEach(function (b) {
        b.disabled = false;
      });
      play();
    })
    .catch(function (error) {
      say("The recording could not be played: " + error.message, true);
    });
})();
