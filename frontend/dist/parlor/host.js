/* Messages with the page around the chat (window.postMessage), both ways checked by origin and window.
 *
 * The loader (widget.js) on the customer's site sends: open, identify {attributes}, ask {text}, reset.
 * The bot's admin page (live preview, same origin as Parlor) sends: preview {appearance}.
 * The chat sends the loader: ready, store {key, value}, close, event {name, data}; events are passed on
 * to the host page's Parlor.on() handlers.
 */

export function createHost({ embedded, hostOrigin, preview }) {
  const framed = window.parent !== window;

  function send(type, data) {
    if (!embedded || !hostOrigin || !framed) return;
    window.parent.postMessage({ ...data, parlor: 1, type }, hostOrigin);
  }

  return {
    send,
    event: (name, data) => send("event", { name, data: data || {} }),

    /** handlers: {type(data, {fromHost, fromAdmin})}; messages from anyone else are ignored. */
    listen(handlers) {
      window.addEventListener("message", (event) => {
        const data = event.data;
        if (data?.parlor !== 1 || !framed || event.source !== window.parent) return;
        const fromHost = embedded && !!hostOrigin && event.origin === hostOrigin;
        const fromAdmin = preview && event.origin === location.origin;
        if (!fromHost && !fromAdmin) return;
        const handler = Object.hasOwn(handlers, data.type) ? handlers[data.type] : null;
        if (handler) handler(data, { fromHost, fromAdmin });
      });
    },
  };
}
