// Generated from the views' traits by `python -m llm_widgets.widgets.schema`; do not edit.
// `any`: a Dict or List whose items its trait does not describe.
// One interface per view: the state Python syncs, as the front end reads it (Model<...State>).
/* eslint-disable */
import type { PackedArray } from "../lib/buffers";

export interface AttentionViewState {
  causal: boolean;
  error: string;
  grid: PackedArray;
  matrix: PackedArray;
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
  stat_help: Record<string, any>;
  stat_names: string[];
  stats: PackedArray;
  tile: PackedArray;
  tile_request: Record<string, any>;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  unavailable: Record<string, any>;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
}

export interface AttributionViewState {
  error: string;
  faithfulness: Record<string, any>;
  groups: number[];
  info: Record<string, any>;
  method: string;
  methods: Record<string, any>;
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
  _export?: any;
}

export interface AuditViewState {
  attack_result: Record<string, any>;
  attributions: Record<string, any>;
  cf_summary: (Record<string, any>)[];
  differences: Record<string, any>;
  done: boolean;
  error: string;
  example_attributions: Record<string, any>;
  failures: (Record<string, any>)[];
  group_table: (Record<string, any>)[];
  memorization_result: Record<string, any>;
  notice: string;
  pairs: (Record<string, any>)[];
  progress: number;
  progress_label: string;
  protected_attribute: string;
  robustness: (Record<string, any>)[];
  score_name: string;
  selected_example: number | null;
  selected_pair: number | null;
  shifts: PackedArray;
  summary: (Record<string, any>)[];
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
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
  _export?: any;
}

export interface DirectLogitViewState {
  component_shares: PackedArray;
  components: string[];
  error: string;
  head_shares: PackedArray;
  n_heads: number;
  n_layers: number;
  n_tokens: number;
  notice: string;
  progress: number;
  progress_label: string;
  selected_head: number | null;
  selected_layer: number | null;
  selected_token: number | null;
  summary: Record<string, any>;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
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
  view_names: string[];
  views: any[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
}

export interface FeatureViewState {
  corpus_summary: Record<string, any>;
  edit_probs: Record<string, any>;
  error: string;
  error_norm: PackedArray;
  feature: Record<string, any>;
  k: number;
  l0: PackedArray;
  n_features: number;
  notice: string;
  patching: Record<string, any>;
  progress: number;
  progress_label: string;
  quality: Record<string, any>;
  selected_feature: number | null;
  selected_token: number | null;
  site: string;
  title: string;
  token_features: (Record<string, any>)[];
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  top_ids: PackedArray;
  top_values: PackedArray;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
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
  _export?: any;
}

export interface NeuronViewState {
  ablation: Record<string, any>;
  ablation_donor: string;
  ablation_mode: "" | "zero" | "mean" | "resample";
  ablation_note: string;
  acts: PackedArray;
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
  _export?: any;
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
  summary: Record<string, any>;
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  tokens: string[];
  top_index: PackedArray;
  top_probs: PackedArray;
  top_tokens: string[];
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
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
  examples: any[];
  level: string;
  majority: number;
  n_layers: number;
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
  _export?: any;
}

export interface SteeringViewState {
  base: string[];
  base_perplexity: number;
  broken: boolean[][];
  cells: any[];
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
  _export?: any;
}

export interface SurrogateViewState {
  class_names: string[];
  details: Record<string, any>;
  done: boolean;
  error: string;
  explain: string;
  explanations: Record<string, any>;
  notice: string;
  preds: PackedArray;
  progress: number;
  progress_label: string;
  selected_surrogate: number | null;
  selected_text: number | null;
  surrogates: (Record<string, any>)[];
  teacher: Record<string, any>;
  teacher_pred: number[];
  texts: string[];
  title: string;
  token_markup: boolean[];
  token_messages: number[];
  token_roles: string[];
  top_k: number;
  /** Only in a static export: what the view ships for offline use (View._export_extra). */
  _export?: any;
}
