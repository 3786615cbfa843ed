import { cleanup } from "@testing-library/preact";
import { afterEach } from "vitest";

afterEach(() => cleanup());

// jsdom has no PointerEvent: a MouseEvent with a pointerId will do for swipes.
if (typeof window.PointerEvent === "undefined") {
  class PointerEvent extends MouseEvent {
    readonly pointerId: number;
    constructor(type: string, init: PointerEventInit = {}) {
      super(type, init);
      this.pointerId = init.pointerId ?? 0;
    }
  }
  window.PointerEvent = PointerEvent as typeof window.PointerEvent;
}
// Preact listens to "pointerdown" only where elements have an onpointerdown property.
for (const name of ["onpointerdown", "onpointerup", "onpointercancel", "onpointerleave"]) {
  if (!(name in HTMLElement.prototype)) {
    Object.defineProperty(HTMLElement.prototype, name, { value: null, writable: true });
  }
}
