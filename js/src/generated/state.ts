// Generated from the views' traits by `python -m llm_widgets.widgets.schema`; do not edit.
// `any`: a Dict or List whose items its trait does not describe (only where the value is truly open:
// tests/test_schema.py lists them). PackedArray<{...}>: an Array trait's
// packed record with what it is of (Array(of=...)); {} (no `shape`) until computed.
// One interface per view: the state Python syncs, as the front end reads it (Model<...State>).
/* eslint-disable */
import type { PackedArray } from "../lib/buffers";

export interface AttentionViewState {
  causal: boolean;
  error: string;
  grid: PackedArray;
  matrix: PackedArray<{ mode: "head" | "mean" | "rollout"; layer: number; head: number; step: number; n: number; }>;
  mode: "head" | "mean" | "rollout";
  n_heads: number;
  n_layers: number;
  n_tokens: number;
  notice: string;
  progress: number;
  progress_label: string;
  selected_head: number;
  selected_layer: number;
  selected_token: number | null;
  stat_help: Record<string, string>;
  stat_names: string[];
  stats: PackedArray;
  tile: PackedArray<{ mode: "head" | "mean"; layer: number; head: number; r0: number; c0: number; }>;
  tile_request: { mode: string; layer: number; head: number; r0: number; c0: number; rows: number; cols: number; } | Record<string, never>;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  unavailable: Record<string, string>;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: { partial?: boolean; heads?: PackedArray; mean?: PackedArray; rollout?: PackedArray; };
}

export interface AttributionViewState {
  error: string;
  faithfulness: { rows: ({ fx: number | null; fbase: number | null; delta: number | null; relative_delta: number | null; comprehensiveness: number | null; sufficiency: number | null; deletion_auc: number | null; deletion_random_auc: number | null; })[]; percents: number[]; comprehensiveness: PackedArray; sufficiency: PackedArray; deletion_x: PackedArray; deletion: PackedArray; deletion_random: PackedArray; } | null;
  groups: number[];
  info: { method: string; method_label: string; signed: boolean; baseline: string; output: string; steps: number; n_samples: number; generated: boolean; contrast: string | null; target_tokens: string[]; } | Record<string, never>;
  method: string;
  methods: Record<string, string>;
  notice: string;
  progress: number;
  progress_label: string;
  scores: PackedArray;
  selected_output: number;
  selected_token: number | null;
  special: boolean[];
  targets: string[];
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  word_level: boolean;
  word_scores: PackedArray;
  words: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface AuditViewState {
  attack_result: { summary: ({ texts: number; successes: number; queries: number; order: string; success_rate: number | null; success_rate_lo: number | null; success_rate_hi: number | null; mean_words_changed: number | null; mean_queries: number | null; queries_per_success: number | null; })[]; ranking: string; examples: ({ id: number; pred_o: number; pred_a: number; words_changed: number; queries: number; conf_o: number; conf_a: number; original: ([string, boolean])[]; adversarial: ([string, boolean])[]; changes: ({ index: number; word: string; new: string; kind: string; })[]; })[]; budget: { max_words: number; max_queries: number; max_candidates: number; kinds: string[]; }; class_names: string[]; } | null;
  attributions: Record<string, { a: { tokens: string[]; weights: PackedArray; what: string; }; b: { tokens: string[]; weights: PackedArray; what: string; }; }>;
  cf_summary: ({ pairs: number; group: string; reference: string; mean_shift: number | null; mean_shift_lo: number | null; mean_shift_hi: number | null; mean_abs_shift: number | null; mean_abs_shift_lo: number | null; mean_abs_shift_hi: number | null; max_abs_shift: number | null; })[];
  differences: Record<string, (number | null)[]>;
  done: boolean;
  error: string;
  example_attributions: Record<string, { original: { tokens: string[]; weights: PackedArray; what: string; }; adversarial: { tokens: string[]; weights: PackedArray; what: string; }; }>;
  failures: ({ pred_o: number; pred_p: number; test: string; kind: string; score_o: number; score_p: number; original: ([string, boolean])[]; perturbed: ([string, boolean])[]; })[];
  group_table: ({ n: number; accuracy: number | null; accuracy_lo: number | null; accuracy_hi: number | null; selection_rate: number | null; selection_rate_lo: number | null; selection_rate_hi: number | null; tpr: number | null; tpr_lo: number | null; tpr_hi: number | null; fpr: number | null; fpr_lo: number | null; fpr_hi: number | null; group: string | number; })[];
  memorization_result: { strings: ({ matched: number; rest_tokens: number; string: string; continuation: string; loglik: number | null; percentile: number | null; exact: boolean; })[]; canaries: ({ candidates: number; merged: number; rank: number; canary: string; secret: string; exposure: number | null; max_exposure: number | null; })[]; prefix_tokens: number; lookalike: string; n_lookalikes: number; summary: { strings?: number; extracted?: number; exact_rate?: number | null; exact_rate_lo?: number | null; exact_rate_hi?: number | null; mean_percentile?: number | null; }; } | null;
  notice: string;
  pairs: ({ id: number; group: string; term_a: string; term_b: string; text_a: string; text_b: string; score_a: number; score_b: number; shift: number; })[];
  progress: number;
  progress_label: string;
  protected_attribute: string;
  robustness: ({ cases: number; passed: number; test: string; kind: string; pass_rate: number | null; pass_rate_lo: number | null; pass_rate_hi: number | null; mean_abs_change: number | null; })[];
  score_name: string;
  selected_example: number | null;
  selected_pair: number | null;
  shifts: PackedArray;
  summary: ({ section: string; check: string; rule: string; detail: string; value: number | null; ci_low: number | null; ci_high: number | null; threshold: number | null; passed: boolean; })[];
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface ConceptViewState {
  clusters: PackedArray;
  color_by: "cluster" | "label";
  coords: PackedArray;
  done: boolean;
  error: string;
  explained: PackedArray;
  k: number;
  label_index: PackedArray;
  label_names: string[];
  level: string;
  method: string;
  n_layers: number;
  notice: string;
  progress: number;
  progress_label: string;
  rows: PackedArray;
  selected_indices: number[];
  selected_layer: number | "embeddings";
  texts_tokens: string[][];
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface DirectLogitViewState {
  component_shares: PackedArray<{ position: number; }>;
  components: string[];
  error: string;
  head_shares: PackedArray<{ position: number; }>;
  n_heads: number;
  n_layers: number;
  n_tokens: number;
  notice: string;
  progress: number;
  progress_label: string;
  selected_head: number | null;
  selected_layer: number | null;
  selected_token: number | null;
  summary: { metric: string; position: number; token: string; logit: number; total: number; error: number; tolerance: number; resolution: number; unresolved: boolean; } | null;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: { partial?: boolean; heads?: PackedArray; components?: PackedArray; logit?: PackedArray; };
}

export interface ExplorerState {
  error: string;
  notice: string;
  progress: number;
  progress_label: string;
  selected_token: number | null;
  skipped: Record<string, string>;
  text: string;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  truncate: boolean;
  view_names: string[];
  views: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: { children: ({ bundle: string; state: Record<string, any>; })[]; };
}

export interface FeatureViewState {
  corpus_summary: { n_texts: number; n_tokens: number; dead: number; dead_ids: number[]; } | Record<string, never>;
  edit_probs: { outputs: string[]; ids: number[]; before: number[]; after: number[]; position: number; description: string; } | Record<string, never>;
  error: string;
  error_norm: PackedArray;
  feature: { id: number; over_text: number[]; logits?: { promoted: ([string, number])[]; suppressed: ([string, number])[]; }; contexts?: ({ text: number; position: number; activation: number; tokens: string[]; at: number; })[]; hist?: number[]; edges?: number[]; fires?: number; density?: number; max?: number; } | Record<string, never>;
  k: number;
  l0: PackedArray;
  n_features: number;
  notice: string;
  patching: { metric: string; clean_metric: number; corrupted_metric: number; position: number; corrupted_tokens: string[]; positions: number[]; note: string; top: Record<string, ([number, number])[]>; error: Record<string, number>; } | Record<string, never>;
  progress: number;
  progress_label: string;
  quality: { fvu: number; mean_l0: number; loss?: { original: number; spliced: number; zero: number; recovered: number; }; loss_note?: string; } | Record<string, never>;
  selected_feature: number | null;
  selected_token: number | null;
  site: string;
  title: string;
  token_features: ({ feature: number; activation: number; promoted: string[]; suppressed: string[]; })[];
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  top_ids: PackedArray;
  top_values: PackedArray;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface GraphViewState {
  can_intervene: boolean;
  done: boolean;
  edge_source: PackedArray;
  edge_target: PackedArray;
  edge_weight: PackedArray;
  error: string;
  feature_panel: { row: number; id: string; kind: string; layer: number; position: number; feature: number; activation: number | null; label: string; over_text?: number[]; logits?: { promoted: ([string, number])[]; suppressed: ([string, number])[]; }; contexts?: ({ text: number; position: number; activation: number; tokens: string[]; at: number; })[]; why?: string; } | Record<string, never>;
  intervene_request: { target: number | string; value: number; n: number; } | Record<string, never>;
  intervention: { ids: string[]; old: number[]; new: number[]; targets: string[]; before: number[]; after: number[]; predicted: number[]; top_before: ([string, number])[]; top_after: ([string, number])[]; note: string; } | Record<string, never>;
  kinds: string[];
  n_layers: number;
  n_nodes: number;
  node_activation: PackedArray;
  node_feature: PackedArray;
  node_ids: string[];
  node_influence: PackedArray;
  node_kind: PackedArray;
  node_labels: string[];
  node_layer: PackedArray;
  node_position: PackedArray;
  notice: string;
  progress: number;
  progress_label: string;
  scores: { replacement: number | null; completeness: number | null; } | Record<string, never>;
  selected_node: number | null;
  selected_nodes: number[];
  suggested: string[][];
  supernodes: string[][];
  target_probs: number[];
  target_tokens: string[];
  threshold: number;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface LogitLensViewState {
  colour: "top" | "next";
  error: string;
  kl: PackedArray;
  layer_names: string[];
  lens: "logit" | "tuned";
  lens_names: string[];
  n_layers: number;
  next_prob: PackedArray;
  notice: string;
  progress: number;
  progress_label: string;
  selected_layer: number | "embeddings" | null;
  selected_token: number | null;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  top_index: PackedArray;
  top_probs: PackedArray;
  top_tokens: string[];
  tuned_next_prob: PackedArray;
  tuned_top_index: PackedArray;
  tuned_top_probs: PackedArray;
  tuned_top_tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface NeuronViewState {
  ablation: { layer: number; neurons: number[]; mode: string; outputs: string[]; before: number[]; after: number[]; } | Record<string, never>;
  ablation_donor: string;
  ablation_mode: "" | "zero" | "mean" | "resample";
  ablation_note: string;
  acts: PackedArray<{ layer: number; }>;
  corpus_examples: ({ text: number; position: number; activation: number; tokens: string[]; at: number; })[];
  corpus_summary: { n_texts: number; n_tokens: number; } | Record<string, never>;
  error: string;
  k: number;
  n_layers: number;
  n_neurons: number;
  notice: string;
  progress: number;
  progress_label: string;
  selected_layer: number;
  selected_neuron: number | null;
  selected_token: number | null;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: { all?: PackedArray; };
}

export interface PatchingViewState {
  clean_tokens: string[];
  direction: "denoising" | "noising";
  error: string;
  head_scores: PackedArray;
  head_top_index: PackedArray;
  head_top_probs: PackedArray;
  n_heads: number;
  n_layers: number;
  notice: string;
  progress: number;
  progress_label: string;
  scores: PackedArray;
  selected_head: number | null;
  selected_layer: number | null;
  selected_site: "resid" | "attn" | "mlp" | "heads" | null;
  selected_token: number | null;
  sites: string[];
  summary: { metric: string; clean: number; corrupted: number; position: number; changed: number[]; clean_top: ([string, number])[]; corrupted_top: ([string, number])[]; } | Record<string, never>;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  top_index: PackedArray;
  top_probs: PackedArray;
  top_tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface ProbeViewState {
  amnesic_metric: string;
  amnesic_names: string[];
  amnesic_positions: string;
  amnesic_rows: PackedArray;
  classes: string[];
  confusion: PackedArray;
  curve_names: string[];
  curves: PackedArray;
  done: boolean;
  error: string;
  examples: (({ tokens: string[]; highlight: number; true: string; pred: string; confidence: number; row: number; weights?: PackedArray; })[])[];
  interval: PackedArray;
  level: string;
  majority: number;
  n_layers: number;
  n_test: number;
  notice: string;
  probe_kind: string;
  progress: number;
  progress_label: string;
  seeds: number;
  selected_layer: number | "embeddings" | null;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface SteeringViewState {
  base: string[];
  base_perplexity: number;
  broken: boolean[][];
  cells: (({ tokens: string[][]; changed: boolean[][]; texts: string[]; })[])[];
  classes: string[];
  done: boolean;
  error: string;
  layers: number[];
  mode: string;
  model_hint: string;
  n_layers: number;
  notice: string;
  perplexity: PackedArray;
  probs: PackedArray;
  progress: number;
  progress_label: string;
  prompts: string[];
  score: PackedArray;
  selected_layer: number | null;
  selected_strength: number | null;
  strengths: number[];
  suggested: (number | null)[];
  target: string;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  vector: PackedArray;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}

export interface SurrogateViewState {
  class_names: string[];
  details: Record<string, { pred: number; teacher_pred: number; words?: string[]; weights?: PackedArray; rule?: number; tokens?: string[]; teacher?: PackedArray; student?: PackedArray; target?: string; method?: string; k?: number; top_teacher?: number[]; top_student?: number[]; agreement?: number; }>;
  done: boolean;
  error: string;
  explain: string;
  explanations: Record<string, { kind: "logistic" | "tree" | "student"; weights?: ({ feature: string; weight: number; toward: number; })[]; rules?: ({ text: string; label: number; n: number; purity: number; })[]; C?: number; ngram?: number; max_depth?: number; layers?: number; hidden?: number; heads?: number; temperature?: number; epochs?: number; cached?: boolean; }>;
  notice: string;
  preds: PackedArray;
  progress: number;
  progress_label: string;
  selected_surrogate: number | null;
  selected_text: number | null;
  surrogates: ({ id: number; name: string; kind: string; size: number; size_unit: string; fidelity: number | null; fidelity_lo: number | null; fidelity_hi: number | null; accuracy: number | null; accuracy_lo: number | null; accuracy_hi: number | null; ms_per_text: number | null; fit_seconds: number | null; disagreements: number; })[];
  teacher: { name: string; size: number; size_unit: string; ms_per_text: number; accuracy: number | null; accuracy_lo: number | null; accuracy_hi: number | null; } | Record<string, never>;
  teacher_pred: number[];
  texts: string[];
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  top_k: number;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: Record<string, never>;
}
