// One animator for the elastic transitions: every moving element goes from its current state
// (translate, scale, opacity) to a target state, interpolated on requestAnimationFrame. Only
// transform and opacity change, so a frame costs the compositor, not a layout. A transition can
// be skipped (finish at once); with zero duration (reduced motion) the end state is applied
// synchronously. An element whose target is the identity loses its inline styles at the end, so
// the overview comes back exactly as it was.

export interface State {
  tx: number;
  ty: number;
  sx: number;
  sy: number;
  opacity: number;
}

export const IDENTITY: State = { tx: 0, ty: 0, sx: 1, sy: 1, opacity: 1 };

interface Track {
  el: HTMLElement | SVGElement;
  from: State;
  to: State;
}

const isIdentity = (s: State) => s.tx === 0 && s.ty === 0 && s.sx === 1 && s.sy === 1 && s.opacity === 1;

function ease(t: number): number {
  return t < 0.5 ? 4 * t * t * t : 1 - Math.pow(-2 * t + 2, 3) / 2;
}

function apply(el: HTMLElement | SVGElement, s: State): void {
  const st = el.style;
  if (isIdentity(s)) {
    st.removeProperty("transform");
    st.removeProperty("transform-origin");
    st.removeProperty("opacity");
    return;
  }
  st.transformOrigin = "0 0";
  st.transform = s.tx === 0 && s.ty === 0 && s.sx === 1 && s.sy === 1 ? "" : `translate(${s.tx.toFixed(2)}px, ${s.ty.toFixed(2)}px) scale(${s.sx.toFixed(4)}, ${s.sy.toFixed(4)})`;
  if (s.opacity === 1) st.removeProperty("opacity");
  else st.opacity = s.opacity.toFixed(3);
}

export class Animator {
  private readonly states = new WeakMap<Element, State>();
  private tracks: Track[] = [];
  private frame = 0;
  private start = 0;
  private duration = 0;
  private done: (() => void) | null = null;
  /** Frame times of the last transition (ms between frames), for the benchmark. */
  frameTimes: number[] = [];
  /** Script time spent applying each frame of the last transition (ms): the animator's own cost. */
  workTimes: number[] = [];
  /** performance.now() of the last transition's first animation frame (0: none yet). */
  firstFrameAt = 0;
  private last = 0;
  /** Called on every painted frame with the eased progress (0..1). */
  onFrame: ((t: number) => void) | null = null;
  /** Called when a transition starts (true) and ends (false), e.g. to hint the compositor. */
  onMoving: ((moving: boolean) => void) | null = null;

  get running(): boolean {
    return this.frame !== 0;
  }

  /** The state an element is drawn in now. */
  stateOf(el: Element): State {
    return this.states.get(el) ?? IDENTITY;
  }

  /** Put `el` in `s` at once (no animation). */
  set(el: HTMLElement | SVGElement, s: State): void {
    this.states.set(el, s);
    apply(el, s);
  }

  /**
   * Move every element of `targets` from where it is drawn now to its target over `ms`;
   * `done` runs once the last frame is drawn (or at once when `ms` is 0).
   */
  run(targets: Map<HTMLElement | SVGElement, State>, ms: number, done?: () => void): void {
    this.finish();
    this.tracks = [];
    for (const [el, to] of targets) this.tracks.push({ el, from: this.stateOf(el), to });
    this.done = done ?? null;
    this.duration = ms;
    this.frameTimes = [];
    this.workTimes = [];
    this.firstFrameAt = 0;
    if (ms <= 0) {
      this.finish();
      return;
    }
    this.onMoving?.(true);
    this.start = performance.now();
    this.last = this.start;
    this.step(this.start);
    this.frame = requestAnimationFrame(this.tick);
  }

  private tick = (now: number) => {
    if (!this.firstFrameAt) this.firstFrameAt = performance.now();
    this.frameTimes.push(now - this.last);
    this.last = now;
    const t = Math.min(1, (now - this.start) / this.duration);
    if (t >= 1) {
      this.frame = 0;
      this.onMoving?.(false);
      this.finish();
      return;
    }
    const w0 = performance.now();
    this.step(now);
    this.workTimes.push(performance.now() - w0);
    this.frame = requestAnimationFrame(this.tick);
  };

  private step(now: number): void {
    const t = ease(Math.min(1, Math.max(0, (now - this.start) / this.duration)));
    for (const tr of this.tracks) {
      const a = tr.from;
      const b = tr.to;
      const s: State = {
        tx: a.tx + (b.tx - a.tx) * t,
        ty: a.ty + (b.ty - a.ty) * t,
        sx: a.sx + (b.sx - a.sx) * t,
        sy: a.sy + (b.sy - a.sy) * t,
        opacity: a.opacity + (b.opacity - a.opacity) * t,
      };
      this.states.set(tr.el, s);
      apply(tr.el, s);
    }
    this.onFrame?.(t);
  }

  /** Jump to the end of the running transition (a click or key skips it). */
  finish(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.onMoving?.(false);
    }
    this.frame = 0;
    const tracks = this.tracks;
    this.tracks = [];
    for (const tr of tracks) {
      this.states.set(tr.el, tr.to);
      apply(tr.el, tr.to);
    }
    if (tracks.length || this.done) this.onFrame?.(1);
    const done = this.done;
    this.done = null;
    done?.();
  }

  /** Forget an element's state and its inline transform / opacity. */
  reset(el: HTMLElement | SVGElement): void {
    this.states.delete(el);
    apply(el, IDENTITY);
  }
}

/** The state that draws an element laid out at `from` inside `to` (transform-origin 0 0). */
export function fit(from: { x: number; y: number; w: number; h: number }, to: { x: number; y: number; w: number; h: number }, opacity: number): State {
  const sx = from.w > 0 ? to.w / from.w : 1;
  const sy = from.h > 0 ? to.h / from.h : 1;
  return { tx: to.x - from.x, ty: to.y - from.y, sx, sy, opacity };
}
