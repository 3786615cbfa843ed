// Horizontal swipes on a bar (the status bar to the left, the blue bar to the right, as in
// the manual). A swipe is a mostly horizontal drag of at least 50 px; the click that may
// follow it is swallowed, so a swipe never also counts as a tap.

import { useRef } from "preact/hooks";

const DISTANCE = 50;

export interface SwipeHandlers {
  onSwipeLeft?: () => void;
  onSwipeRight?: () => void;
}

export function useSwipe({ onSwipeLeft, onSwipeRight }: SwipeHandlers) {
  const start = useRef<{ x: number; y: number; id: number } | null>(null);
  const swiped = useRef(false);
  return {
    onPointerDown(event: PointerEvent) {
      start.current = { x: event.clientX, y: event.clientY, id: event.pointerId };
      swiped.current = false;
    },
    onPointerUp(event: PointerEvent) {
      const from = start.current;
      start.current = null;
      if (from === null || from.id !== event.pointerId) return;
      const dx = event.clientX - from.x;
      const dy = event.clientY - from.y;
      if (Math.abs(dx) < DISTANCE || Math.abs(dx) < 2 * Math.abs(dy)) return;
      swiped.current = true;
      if (dx < 0) onSwipeLeft?.();
      else onSwipeRight?.();
    },
    onPointerCancel() {
      start.current = null;
    },
    onClickCapture(event: MouseEvent) {
      if (swiped.current) {
        swiped.current = false;
        event.preventDefault();
        event.stopPropagation();
      }
    },
  };
}
