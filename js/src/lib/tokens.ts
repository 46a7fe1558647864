// A strip of tokens, each coloured by a weight. Token text is set with textContent: always escaped.
// Long inputs: only a window of the tokens has DOM spans (at most MAX_SPANS at once); indices are
// always those of the whole list (data-index). A chat input (the views' token_roles / token_markup /
// token_messages traits, llm_widgets.chat) shows its role segments: a role label where each message
// starts, the chat template's markup greyed.
import { colorScale, ColorScale, css, ink } from "./colors";
import { THEME_EVENT } from "./dom";
import { fmt } from "./format";
import { absMax } from "./ndarray";

// inline style per colour-table entry (every colour is an entry of the colour tables)
const STYLE = new WeakMap<object, string>();

/** Event a strip dispatches (bubbling) on its element each time it is painted: a view around other
 * views (the Explorer) reads the strip's weights and scale from it (detail: the strip). */
export const PAINT_EVENT = "lw-strip-paint";

/** The most tokens a strip shows at once. */
export const MAX_SPANS = 512;

/** One message of a chat input: tokens [start, end) of the message `message` in role `role`. */
export interface RoleSegment {
  role: string;
  message: number;
  start: number;
  end: number;
}

/** The messages of a chat input as runs of tokens: a new segment wherever the message index (or,
 * without indices, the role) changes. Empty roles (a plain text) give no segments. */
export function roleSegments(roles: readonly string[] | null | undefined, messages?: readonly number[] | null): RoleSegment[] {
  const out: RoleSegment[] = [];
  if (!roles || !roles.length) return out;
  const key = (i: number) => (messages && i < messages.length ? messages[i] : -1);
  for (let i = 0; i < roles.length; i++) {
    const last = out[out.length - 1];
    if (last && last.role === roles[i] && key(i) === last.message) last.end = i + 1;
    else out.push({ role: roles[i], message: key(i), start: i, end: i + 1 });
  }
  return out;
}

const ROLE_STYLE_ID = "lw-role-style";
const ROLE_CSS = `.lw-tok.lw-markup{opacity:.5;font-style:italic}
.lw-role{font-size:10px;text-transform:uppercase;letter-spacing:.04em;color:var(--lw-muted,#616161);padding:1px 3px 1px 6px;border-left:2px solid var(--lw-muted,#616161);margin-left:4px;align-self:center}`;

function injectRoleStyle(): void {
  if (typeof document === "undefined" || document.getElementById(ROLE_STYLE_ID)) return;
  const st = document.createElement("style");
  st.id = ROLE_STYLE_ID;
  st.textContent = ROLE_CSS;
  document.head.appendChild(st);
}

export interface StripOptions {
  onHover?: (i: number | null) => void;
  onClick?: (i: number) => void;
  testid?: string;
  maxSpans?: number; // default MAX_SPANS
}

export class TokenStrip {
  readonly el: HTMLDivElement;
  private spans = new Map<number, HTMLSpanElement>(); // index -> span, for the tokens shown
  private selected = -1;
  private leaving: ReturnType<typeof setTimeout> | undefined;
  private styles = new Map<number, string>(); // the inline style each shown token has now
  private lo = 0;
  private hi = 0;
  private w: ArrayLike<number> | null = null;
  private sc: ColorScale | null = null;
  private readonly max: number;
  private roles: readonly string[] | null = null;
  private markup: readonly boolean[] | null = null;
  private segs: RoleSegment[] = [];
  private segStart = new Map<number, RoleSegment>(); // first token of a segment -> its segment

  constructor(private labels: string[], private o: StripOptions = {}) {
    this.el = document.createElement("div");
    this.el.className = "lw-strip";
    this.el.dataset.testid = o.testid ?? "tokens";
    this.el.addEventListener(THEME_EVENT, () => this.repaint()); // the scale's palette follows the theme
    this.max = Math.max(1, o.maxSpans ?? MAX_SPANS);
    this.setRange(0, Math.min(labels.length, this.max));
  }

  /** Tokens in the whole list (shown or not). */
  get length(): number { return this.labels.length; }

  /** The tokens shown: [start, end). */
  get range(): [number, number] { return [this.lo, this.hi]; }

  /** Show tokens [lo, hi) (clamped to the list, and to at most maxSpans tokens from lo). */
  setRange(lo: number, hi: number, force = false): void {
    const n = this.labels.length;
    lo = Math.max(0, Math.min(Math.floor(lo), n));
    hi = Math.max(lo, Math.min(Math.ceil(hi), n, lo + this.max));
    if (lo === this.lo && hi === this.hi && this.el.childNodes.length && !force) return;
    this.lo = lo;
    this.hi = hi;
    const next = new Map<number, HTMLSpanElement>();
    for (let i = lo; i < hi; i++) next.set(i, this.spans.get(i) ?? this.span(i));
    for (const [i] of this.spans) if (!next.has(i)) this.styles.delete(i);
    this.spans = next;
    const parts: Node[] = [];
    const more = (count: number, where: "before" | "after") => {
      const m = document.createElement("span");
      m.className = "lw-more";
      m.dataset.more = where;
      m.textContent = `\u2026${count} more`;
      m.title = `Show the ${where === "before" ? "previous" : "next"} tokens`;
      m.addEventListener("click", () => (where === "before" ? this.setRange(lo - this.max, lo) : this.setRange(hi, hi + this.max)));
      return m;
    };
    if (lo > 0) parts.push(more(lo, "before"));
    for (const [i, span] of next) {
      this.decorate(i, span);
      const seg = this.segStart.get(i) ?? (i === lo ? this.segmentOf(i) : undefined); // the window opens mid-message
      if (seg) parts.push(this.roleLabel(seg));
      parts.push(span);
    }
    if (hi < n) parts.push(more(n - hi, "after"));
    this.el.replaceChildren(...parts);
    Object.assign(this.el.dataset, { start: String(lo), end: String(hi), total: String(n) });
    this.repaint();
    this.select(this.selected);
  }

  /** Show a window of at most maxSpans tokens around token `centre`, within [lo, hi). */
  showAround(centre: number, lo = 0, hi = this.labels.length): void {
    const n = Math.min(this.max, hi - lo);
    const a = Math.min(Math.max(lo, Math.round(centre - n / 2)), hi - n);
    this.setRange(a, a + n);
  }

  /** Show the role segments of a chat input: roles[i] (the role of token i's message), markup[i]
   * (true where the chat template wrote token i: greyed) and messages[i] (its message index; a new
   * label wherever it changes). null or empty: a plain text, no segments. */
  setRoles(roles: readonly string[] | null, markup?: readonly boolean[] | null, messages?: readonly number[] | null): void {
    this.roles = roles && roles.length ? roles : null;
    this.markup = this.roles && markup ? markup : null;
    this.segs = roleSegments(this.roles, messages);
    this.segStart = new Map(this.segs.map((g) => [g.start, g]));
    if (this.roles) injectRoleStyle();
    this.setRange(this.lo, this.hi, true);
  }

  /** The role segments shown (empty for a plain text). */
  get segments(): RoleSegment[] { return this.segs; }

  private segmentOf(i: number): RoleSegment | undefined {
    return this.segs.find((g) => g.start <= i && i < g.end);
  }

  private roleLabel(seg: RoleSegment): HTMLSpanElement {
    const m = document.createElement("span");
    m.className = "lw-role";
    m.textContent = seg.role; // escaped, as every string from Python
    m.dataset.role = seg.role;
    m.dataset.message = String(seg.message);
    m.dataset.start = String(seg.start);
    m.title = `${seg.role}: tokens ${seg.start}\u2013${seg.end - 1}`;
    return m;
  }

  private decorate(i: number, s: HTMLSpanElement): void {
    const role = this.roles && i < this.roles.length ? this.roles[i] : undefined;
    if (role === undefined) delete s.dataset.role; else s.dataset.role = role;
    s.classList.toggle("lw-markup", Boolean(this.markup && this.markup[i]));
  }

  private span(i: number): HTMLSpanElement {
    const s = document.createElement("span");
    s.className = "lw-tok";
    s.textContent = this.labels[i];
    s.dataset.index = String(i);
    s.addEventListener("mouseenter", () => {
      s.classList.add("lw-hover");
      clearTimeout(this.leaving); // moving to a neighbour: one update, not a clear then a redraw
      this.o.onHover?.(i);
    });
    s.addEventListener("mouseleave", () => {
      s.classList.remove("lw-hover");
      this.leaving = setTimeout(() => this.o.onHover?.(null), 0);
    });
    s.addEventListener("click", () => this.o.onClick?.(i));
    return s;
  }

  /** Colour each token by its weight (w[i] for token i of the whole list) on scale s; null: no colours. */
  paint(w: ArrayLike<number> | null, s: ColorScale | null): void {
    this.w = w;
    this.sc = s;
    this.repaint();
    this.el.dispatchEvent(new CustomEvent(PAINT_EVENT, { bubbles: true, detail: this }));
  }

  /** The weights the strip paints with now (null: none). */
  get weights(): ArrayLike<number> | null { return this.w && this.sc ? this.w : null; }

  /** Colour each token by its weight; signed weights use the diverging scale; range vmax (default:
   * the largest |weight|). Prefer paint() with the scale of the heatmap beside the strip. */
  setWeights(w: ArrayLike<number> | null, signed = false, vmax?: number): void {
    this.paint(w, colorScale(signed ? "div" : "seq", vmax ?? (w ? absMax(w) : 0)));
  }

  /** The scale the strip paints with now (null: none). */
  get scale(): ColorScale | null { return this.w ? this.sc : null; }

  private repaint(): void {
    const w = this.w, s = this.sc;
    for (const [i, span] of this.spans) {
      if (!w || !s || i >= w.length) {
        if (this.styles.get(i)) span.style.cssText = "";
        this.styles.set(i, "");
        span.title = "";
        delete span.dataset.weight;
        continue;
      }
      const c = s.color(w[i]);
      let style = STYLE.get(c);
      if (style === undefined) STYLE.set(c, style = `background:${css(c)};color:${ink(c)}`);
      if (this.styles.get(i) !== style) { // most tokens keep their colour from one row to the next
        span.style.cssText = style;
        this.styles.set(i, style);
      }
      span.title = fmt(w[i], 4);
      span.dataset.weight = String(w[i]);
    }
  }

  select(i: number): void {
    this.selected = i;
    for (const [j, s] of this.spans) s.classList.toggle("lw-sel", j === i);
  }

  get selectedIndex(): number { return this.selected; }
}

/** Show a view's chat input on the strip of its input tokens: the base traits token_roles,
 * token_markup and token_messages (all empty for a plain text: nothing shown). */
export function showRoles(strip: TokenStrip, model: { get(key: string): unknown }): void {
  const list = <T>(key: string): T[] | null => (Array.isArray(model.get(key)) ? (model.get(key) as T[]) : null);
  strip.setRoles(list<string>("token_roles"), list<boolean>("token_markup"), list<number>("token_messages"));
}
