/* Live updates for the pages: one websocket to a /ws/ path, messages {"type": ..., "data": ...} dispatched to the
   page's handlers by type, and a reconnect with backoff after which the page reloads what it shows (a socket
   gives no replay, so whatever happened while it was down is read again from the page's own data). */
(function () {
  "use strict";

  var MIN_DELAY = 500, MAX_DELAY = 15000;

  function socketUrl(path) {
    return (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + path;
  }

  /* connect(path, {handlers: {flow_run: fn, task_run: fn, log: fn}, onOpen: fn(reconnected), onStatus: fn(text)}) */
  function connect(path, options) {
    var handlers = options.handlers || {};
    var delay = MIN_DELAY, opened = false, stopped = false, socket = null, timer = null;


    function status(text) { if (options.onStatus) { options.onStatus(text); } }

    function open() {
      timer = null;
      try {
        socket = new WebSocket(socketUrl(path));
      } catch (error) {
        schedule();
        return;
      }
      socket.onopen = function () {
        delay = MIN_DELAY;
        status("live");
        // Reload what the page shows on every open, the first one included: whatever changed between the page's
        // render (or the last message) and this moment reached no socket.
        if (options.onOpen) { options.onOpen(opened); }
        opened = true;
      };
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (error) { return; }
        var handler = message && handlers[message.type];
        if (handler) { handler(message.data); }
      };
      socket.onclose = function (event) {
        socket = null;
        if (stopped) { return; }
        if (event.code === 4404 || event.code === 4403) {
          status(event.reason || "not live");  // an unknown run, or no access: retrying cannot help
          return;
        }
        status("reconnecting…");
        schedule();
      };
    }

    function schedule() {
      if (timer || stopped) { return; }
      var wait = delay * (0.75 + Math.random() * 0.5);
      delay = Math.min(delay * 2, MAX_DELAY);
      timer = window.setTimeout(open, wait);
    }

    open();
    return {
      close: function () { stopped = true; if (timer) { window.clearTimeout(timer); } if (socket) { socket.close(); } }
    };
  }

  window.OrchestratorLive = { connect: connect, socketUrl: socketUrl };
})();
