// Test helpers: happy-dom's <canvas> has no 2-D context (getContext returns null), so tests that
// look at what is drawn install a recording fake; and synthetic mouse events at canvas points.
import { vi } from "vitest";

export interface Call { name: string; args: unknown[] }

/** A fake CanvasRenderingContext2D that records every method call (properties are plain fields). */
export function fakeContext(canvas: HTMLCanvasElement, calls: Call[]): CanvasRenderingContext2D {
  const fields: Record<string | symbol, unknown> = { canvas };
  return new Proxy(fields, {
    get(target, key) {
      if (key in target) return target[key];
      if (key === "createImageData") {
        return (w: number, h: number) => {
          calls.push({ name: "createImageData", args: [w, h] });
          return { width: w, height: h, data: new Uint8ClampedArray(4 * w * h) };
        };
      }
      return (...args: unknown[]) => { calls.push({ name: String(key), args }); };
    },
    set(target, key, value) {
      target[key] = value;
      return true;
    },
  }) as unknown as CanvasRenderingContext2D;
}

/** Make every canvas return a recording fake 2-D context; returns the calls (all canvases together). */
export function stubCanvas(): Call[] {
  const calls: Call[] = [];
  const contexts = new WeakMap<HTMLCanvasElement, CanvasRenderingContext2D>();
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(function (this: HTMLCanvasElement) {
    if (!contexts.has(this)) contexts.set(this, fakeContext(this, calls));
    return contexts.get(this)!;
  } as never);
  return calls;
}

/** Dispatch a mouse event of `type` at client point (x, y) on el. */
export function mouse(el: Element, type: string, x: number, y: number): MouseEvent {
  const e = new MouseEvent(type, { clientX: x, clientY: y, bubbles: true, cancelable: true });
  el.dispatchEvent(e);
  return e;
}

/** Place el's bounding box at (left, top) on the page (happy-dom lays nothing out: every box is at 0, 0). */
export function placeAt(el: Element, left: number, top: number, width = 0, height = 0): void {
  vi.spyOn(el, "getBoundingClientRect").mockReturnValue(
    { left, top, x: left, y: top, width, height, right: left + width, bottom: top + height, toJSON: () => ({}) } as DOMRect);
}
