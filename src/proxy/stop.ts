// What a step towards joining a bridge (reading a ClientHello, dialing) watches, so that
// the bridge ending stops it. An AbortSignal fits; a Bridge is one itself, without the
// AbortController, Event and listener objects a signal would cost every bridge.
export interface Stop {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}
