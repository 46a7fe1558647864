"""The workshop notebooks run top to bottom offline, their exercise solutions run too, and every
claim their text makes with a number holds in what they compute.

Each notebook is executed with nbclient, its views computing in background threads as in JupyterLab
(so a cell that reads a result before it is ready fails); then the code of every solution folded in a
`<details>` block is run in the same kernel, in order; then one last cell evaluates the claims below
against the kernel's variables. A claim is
(what the text says, an expression for the value, a predicate over `v`). When a notebook's text
changes a number, change its claim here, and the other way round.
"""
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTION = re.compile(r"<details>.*?```python\n(.*?)```", re.S)
INTERACTIVE = "import llm_widgets.widgets.base as _base\n_base.headless = lambda: False"
CHECK = '''
import json as _json
_results = {}
for _text, _expr, _pred in %r:
    try:
        _v = eval(_expr)
        _results[_text] = [bool(eval(_pred, {**globals(), "v": _v})), repr(_v)[:300]]
    except Exception as _e:
        _results[_text] = [False, f"{type(_e).__name__}: {_e}"]
print("CLAIMS " + _json.dumps(_results))
'''

CLAIMS = {
    "00_tour.ipynb": [
        ("a middle-layer head, (3, 1), gives about 0.78 of 'are' to 'keys' and about 0.05 to 'cabinet'",
         "(subject_head, subject_weight, cabinet_weight)", "v[0] == (3, 1) and 0.72 <= v[1] <= 0.84 and 0.02 <= v[2] <= 0.08"),
        ("POSITIVE (about 0.94); for NEGATIVE 'brilliant' gets the most negative score (about -0.95)",
         "(brilliant_probs['POSITIVE'], att.result.targets, min(att.result.top(0, 20), key=lambda x: x[1]))",
         "0.9 <= v[0] <= 0.97 and v[1] == ['NEGATIVE'] and v[2][0] == 'brilliant' and -1.05 <= v[2][1] <= -0.85"),
        ("negation is decodable at the embeddings (1.00)", "negation_table.loc['embeddings', 'accuracy']", "v >= 0.99"),
        ("planted PIN after the last layer: about 0.85, 0.54, 0.52, 0.81; after the embeddings at most about 0.27",
         "pin_table.values", "all(abs(a - b) <= 0.04 for a, b in zip(v[-1], (0.85, 0.54, 0.52, 0.81))) and v[0].max() <= 0.3"),
        ("an unseen PIN's digits get at most about 0.14", "unseen_prob.max()", "0.1 <= v <= 0.17"),
        ("exercise 1: singular, (3, 1) gives about 0.27 to 'key' and 0.14 to 'cabinets'", "singular",
         "0.23 <= v['key'] <= 0.31 and 0.11 <= v['cabinets'] <= 0.17"),
        ("exercise 2: 'excellent' first by far; 'twice' a filler with a score near 0", "(twice_rank, dict(r.top(0, 20)))",
         "v[0]['top'] == 'excellent' and v[0]['twice'] > 0 and abs(v[1]['twice']) < 0.05 and v[1]['excellent'] > 10 * abs(v[1]['twice'])"),
        ("exercise 3: the least sure digit is 1 (about 0.52)", "(least_sure, float(pin_table.iloc[-1].min()))",
         "v[0] == '1' and 0.48 <= v[1] <= 0.56"),
    ],
    "01_attention.ipynb": [
        ("head (0, 1) gives about 0.89 of the last word's attention to Mary and about 0.06 to John",
         "(answer_head, W[answer_head][end, mary], W[answer_head][end, john])",
         "v[0] == (0, 1) and 0.85 <= v[1] <= 0.93 and 0.03 <= v[2] <= 0.09"),
        ("the answer flips (Mary about 14.7 -> 3.6, John about 4.2 -> 14.5); (0, 1) stays on Mary (0.89, then 0.72), "
         "about 0.05 on John both times",
         "flip_table.iloc[:, 1:].values.tolist()",
         "abs(v[0][2] - 14.7) <= 0.4 and abs(v[1][2] - 3.6) <= 0.4 and abs(v[0][3] - 4.2) <= 0.4 and abs(v[1][3] - 14.5) <= 0.4 "
         "and abs(v[0][0] - 0.89) <= 0.03 and abs(v[1][0] - 0.72) <= 0.03 and all(0.02 <= r[1] <= 0.08 for r in v)"),
        ("zeroing (0, 1) raises the mean logit difference (about 3.98 -> 4.41) and the share preferred (88% -> 92%); "
         "the control moves it by about 0.05",
         "ioi_ablation.values.tolist()",
         "abs(v[0][0] - 3.98) <= 0.05 and abs(v[1][0] - 4.41) <= 0.05 and abs(v[0][1] - 0.875) < 0.01 and abs(v[1][1] - 0.925) < 0.01 "
         "and abs(v[2][0] - v[0][0]) < 0.1"),
        ("sink heads: about 0.87 on [CLS], cosine about 0.997 when zeroed; the least sink-like: about 0.85",
         "sink_effect[['mean attention on [CLS]', 'cosine to the unablated embedding']].values.tolist()",
         "0.8 <= v[0][0] <= 0.92 and v[0][1] >= 0.99 and 0.8 <= v[1][1] <= 0.9"),
        ("3 of the 5 least sink-like heads are in layer 0", "sum(l == 0 for l, _ in least_sink)", "v == 3"),
        ("[CLS] gives the keyword about 0.83 or more, in every head", "cls_on_keyword.values", "v.min() >= 0.8"),
        ("two keywords: layer 0 -> wonderful (0.95), layer 1 -> terrible (0.99)",
         "two_keywords.iloc[:, :2].loc[['terrible', 'wonderful']].values.tolist()",
         "v[1][0] >= 0.9 and v[0][1] >= 0.95"),
        ("rollout splits evenly: about 0.29 / 0.27, 0.28 on [CLS]",
         "two_keywords['rollout, [CLS] row'].loc[['terrible', 'wonderful']].tolist() + [two_keywords['rollout, [CLS] row'].iloc[0]]",
         "all(0.24 <= x <= 0.33 for x in v)"),
        ("NEGATIVE about 0.93; IG terrible about +2.5, wonderful about -0.9, signs flip for POSITIVE",
         "(float(probs[0]), two_keywords.loc['terrible'].tolist()[-2:], two_keywords.loc['wonderful'].tolist()[-2:])",
         "0.88 <= v[0] <= 0.97 and 2.2 <= v[1][0] <= 2.8 and v[1][1] < -2 and -1.1 <= v[2][0] <= -0.7 and v[2][1] > 0.7"),
        ("exercise 1: the previous-token head is (0, 2), about 1.0", "prev[0]", "v[:2] == (0, 2) and v[2] >= 0.95"),
        ("exercise 2: (0, 1) gives Mary 0.66-0.89 in all four sentences, John at most about 0.09", "four",
         "len(v) == 4 and v['-> Mary'].between(0.63, 0.92).all() and (v['-> John'] <= 0.1).all()"),
        ("exercise 3: attention Grad-CAM follows the target", "chefer_top",
         "v == {'NEGATIVE': 'terrible', 'POSITIVE': 'wonderful'}"),
        ("exercise 4: the checker accepts the solution, which finds (0, 2) with the view's own numbers",
         "(prev_ok, my_prev_head, bool(np.allclose(my_prev, view.result.stat('prev_token'), atol=1e-5)))", "v == (True, (0, 2), True)"),
    ],
    "02_attribution.ipynb": [
        ("IG puts 'dreadful' on top; 'slow' gets almost nothing", "dict(v.result.top(0, 9))",
         "max(v, key=v.get) == 'dreadful' and abs(v['slow']) < 0.05 * v['dreadful']"),
        ("IG, Shapley and SHAP have a relative delta near 0", "methods_table.loc[sorted(COMPLETE), 'relative Δ (only where completeness holds)']",
         "(v.astype(float) < 0.05).all()"),
        ("every method except layer Grad-CAM puts 'dreadful' first", "methods_table['top token'].drop('gradcam')", "(v == 'dreadful').all()"),
        ("layer Grad-CAM is about 0", "methods_table.loc['gradcam', 'comprehensiveness']", "abs(v) < 0.01"),
        ("[PAD] methods (and permutation, AttnLRP) 2.72-2.73; gradient ones 2.50-2.59",
         "methods_table['comprehensiveness'].astype(float)",
         "all(2.715 <= v[m] <= 2.735 for m in ('ig', 'occlusion', 'shapley', 'lime', 'shap', 'permutation', 'lrp')) and "
         "all(2.45 <= v[m] <= 2.6 for m in ('grad_x_input', 'saliency', 'attention_gradcam'))"),
        ("the saturated model is as accurate (100%), about 99.9% sure vs about 95%", "held_out",
         "(v.loc['accuracy'] == 1.0).all() and v.loc['mean confidence', 'saturated'] >= 0.998 and 0.93 <= v.loc['mean confidence', 'keyword classifier'] <= 0.97"),
        ("keyword classifier: every method finds the keyword in at least 97%", "keyword_top['keyword classifier']", "(v >= 0.97).all()"),
        ("saturated: gradient x input 70%, saliency about 62%; occlusion about 97%, IG about 88%", "keyword_top['saturated']",
         "0.6 <= v['grad_x_input'] <= 0.75 and 0.55 <= v['saliency'] <= 0.7 and v['occlusion'] >= 0.95 and 0.82 <= v['ig'] <= 0.92"),
        ("on the example, gradient x input has lower comprehensiveness and higher sufficiency than occlusion",
         "saturated_example.loc[['grad_x_input', 'occlusion'], ['comprehensiveness', 'sufficiency']].astype(float).values",
         "v[0][0] < v[1][0] and v[0][1] > v[1][1]"),
        ("the strongly saturated model's jump takes well under 1% of the path", "change_width(F)", "v < 0.01"),
        ("400 uniform steps miss f(x) - f(baseline) by more than 30%; adaptive within 1% with fewer than 400 "
         "gradient evaluations", "ig_rules.values.tolist()",
         "v[0][0] == 400 and v[0][1] > 0.3 and v[1][0] < 400 and v[1][1] < 0.01"),
        ("the induction model generates the repeat", "(g.result.targets, letters[3:7])", "v[0] == v[1]"),
        ("the first generated letter's top three prompt tokens: its earlier copy, the letter before that copy, then the current "
         "token; every other prompt token below 0.1",
         "(lambda sc: ([int(i) for i in np.argsort(-sc)[:3]], float(np.sort(np.abs(sc))[-4])))(np.asarray(g.result.scores[0]))",
         "v[0] == [4, 3, len(g.result.tokens) - 1] and v[1] < 0.1"),
        ("contrast: the letter before the target's copy about +4.7 (the most); the target's copy below 0.6; the contrast's copy "
         "about +1.8, not negative",
         "(lambda sc: (int(np.argmax(sc)), float(sc[3]), float(sc[4]), float(sc[6])))(np.asarray(contrast_view.wait().result.scores[0]))",
         "v[0] == 3 and 4.3 <= v[1] <= 5.1 and abs(v[2]) < 0.6 and 1.5 <= v[3] <= 2.1"),
        ("exercise 1: Shapley about 92%, below occlusion's 97%; AttnLRP 100%", "(more_methods, keyword_top['saturated']['occlusion'])",
         "0.88 <= v[0]['shapley'] <= 0.95 and v[0]['shapley'] < v[1] and v[0]['lrp'] == 1.0"),
        ("exercise 2: IG sums to f(x) - f(baseline) (about 1.78); gradient x input to about 0.12", "completeness",
         "abs(v['ig'][0] - v['ig'][1]) < 0.05 * abs(v['ig'][1]) and 1.7 <= v['ig'][1] <= 1.85 and 0.08 <= v['grad_x_input'][0] <= 0.16"),
        ("exercise 3: POSITIVE, with 'great' on top", "(negated.targets, negated.top(0, 1)[0][0])", "v == (['POSITIVE'], 'great')"),
        ("exercise 4: the checker accepts the solution; by hand IG puts 'dreadful' on top, close to the view's, summing to about 1.78",
         "(ig_ok, v.result.tokens[int(my_ig.argmax())], my_completeness, "
         "float(np.abs(my_ig.numpy() - np.asarray(attribute(clf, text, 'NEGATIVE', method='ig').scores[0])).max()))",
         "v[0] is True and v[1] == 'dreadful' and abs(v[2][0] - v[2][1]) < 0.02 and 1.7 <= v[2][1] <= 1.85 and v[3] < 0.1"),
    ],
    "03_mechanistic.ipynb": [
        ("the 2-layer model's loss is near 0.15", "loss['2 layers']", "0.13 <= v <= 0.17"),
        ("the 1-layer control is below chance (about 2.87 nats)", "loss['1 layer (control)']", "2.6 <= v <= 3.2 and v < CHANCE"),
        ("the control puts about 72% on seen letters, the 2-layer model about 98%", "mass_on_seen",
         "0.65 <= v['1 layer (control)'] <= 0.8 and v['2 layers'] >= 0.95"),
        ("a uniform bet on seen letters scores about 2.65", "uniform_over_seen", "2.5 <= v <= 2.8"),
        ("first copy about 8.7 nats (worse than chance); second copy about 0.02", "copy_loss['2 layers'].tolist()",
         "8.5 <= v[0] <= 8.9 and v[1] < 0.03"),
        ("the control's second copy sits around 2.3", "copy_loss['1 layer'].iloc[1]", "2.1 <= v <= 2.5"),
        ("all four layer-1 heads score 0.88 or more (0.88 to 0.96)", "stats.loc[1, 'induction']", "(v >= 0.87).all() and (v <= 0.97).all()"),
        ("(0, 0) is the previous-token head (about 0.88); the others 0.21-0.36",
         "(prev_head, stats.loc[0, 'prev_token'].tolist())", "v[0] == (0, 0) and 0.86 <= v[1][0] <= 0.9 and all(0.19 <= x <= 0.38 for x in v[1][1:])"),
        ("DLA: shares sum to the model's logit", "(dla['correct next letter'].sum(), model_logit)", "abs(v[0] - v[1]) < 1e-3"),
        ("DLA: head (1, 2) by hand equals the function's share", "(by_hand, dla.loc['L1H2', 'correct next letter'])",
         "abs(v[0] - v[1]) < 1e-4"),
        ("DLA: layer-1 heads write 1.2 to 3.2 each, layer-0 heads about 0",
         "dla['correct next letter']", "all(1.1 <= v[f'L1H{h}'] <= 3.3 for h in range(4)) and all(abs(v[f'L0H{h}']) < 0.01 for h in range(4))"),
        ("DLA: the embeddings write about +1.2 on the current letter", "dla.loc['embeddings', 'current letter']", "1.1 <= v <= 1.25"),
        ("DLA view: at the cut repeat's last token a layer-1 head writes the most, and the shares add up",
         "(max((f'L{l}H{h}' for l in range(s.n_layers) for h in range(s.n_heads)), key=lambda c: "
         "dla_view.shares(dla_view.n_tokens - 1)[0][dla_view.result.components.index(c)]), "
         "dla_view.summary['error'] <= dla_view.summary['tolerance'])",
         "v[0].startswith('L1H') and v[1]"),
        ("ablating the induction heads or the previous-token head is worse than chance, all three ways",
         "ablation_table.loc[['all induction heads', 'previous-token head (0, 0)']].values", "(v > CHANCE).all()"),
        ("about 5.5 nats (zero or mean) and 9.3 (resample) for the induction heads",
         "ablation_table.loc['all induction heads'].tolist()", "all(5.3 <= x <= 5.7 for x in v[:2]) and 9.0 <= v[2] <= 9.6"),
        ("a bystander head and any single induction head cost little",
         "ablation_table.loc[['one induction head (1, 2)', 'bystander head (0, 1)']].values", "(v < 0.5).all()"),
        ("with the induction heads zeroed it predicts the current letter almost always, at top probability about 0.55",
         "(predicts_current, top_prob)", "v[0] >= 0.99 and 0.51 <= v[1] <= 0.59"),
        ("7 of the 11 positions survive (P > 0.5), five of them above 0.95; the other four fall to about 0",
         "(survivors, int((per_position['P after ablating (0, 0)'] > 0.95).sum()), per_position['P after ablating (0, 0)'].nsmallest(4).max())",
         "v[0] == 7 and v[1] == 5 and v[2] < 0.01"),
        ("accuracy: about 30% without (0, 0), about 14% without the three, 92% keeping (0, 0) alone",
         "backup.tolist()", "v[0] >= 0.95 and 0.27 <= v[1] <= 0.33 and 0.12 <= v[3] <= 0.16 and v[2] < v[1] and 0.9 <= v[4] <= 0.94"),
        ("patching: layer-1 heads restore 0.14 to 0.44 each, about 1.22 summed; (0, 0) about -0.14, the other layer-0 heads about 0",
         "head_patch['denoising (restores)']",
         "all(0.12 <= v[(1, h)] <= 0.46 for h in range(4)) and 1.17 <= v[1].sum() <= 1.27 and -0.17 <= v[(0, 0)] <= -0.11 "
         "and v[0].drop(0).abs().max() < 0.03"),
        ("noising does not give the same numbers: same order, each layer-1 head breaks half to two thirds of what it restores "
         "(0.10 to 0.25, about 0.65 together); (1, 2) differs most, by 0.20; (0, 0) about -0.04",
         "(head_patch.loc[1, 'denoising (restores)'], head_patch.loc[1, 'noising (breaks)'], head_patch.loc[(0, 0), 'noising (breaks)'])",
         "list(v[0].sort_values().index) == list(v[1].sort_values().index) and all(0.45 <= v[1][h] / v[0][h] <= 0.7 for h in range(4)) "
         "and all(0.08 <= v[1][h] <= 0.27 for h in range(4)) and 0.6 <= v[1].sum() <= 0.7 "
         "and (v[0] - v[1]).idxmax() == 2 and 0.18 <= (v[0] - v[1]).max() <= 0.22 and -0.06 <= v[2] <= -0.02"),
        ("neurons: in the sentence the name neuron fires on both Johns (about 2.4) and Mary (about 1.9); over the corpus its "
         "top ten are first names at about 3.0-3.3, none John",
         "(in_sentence, over_corpus, __import__('llm_widgets.teaching.ioi', fromlist=['NAMES']).NAMES)",
         "[w for w, _ in v[0]] == ['John', 'John', 'Mary'] and all(2.2 <= a <= 2.6 for _, a in v[0][:2]) and 1.7 <= v[0][2][1] <= 2.1 "
         "and len(v[1]) == 10 and all(w in v[2] and w != 'John' and 2.9 <= a <= 3.4 for w, a in v[1])"),
        ("the final residual's RMS at the last position: about 0.75 corrupted against 1.08 clean", "rms",
         "0.72 <= v['corrupted'] <= 0.78 and 1.04 <= v['clean'] <= 1.12"),
        ("residual map: the difference sits at the changed position after layer 0, at the last position after layer 1",
         "(patch_view.result.changed, patch_view.result.score('resid', 0, patch_view.result.changed[0]), patch_view.result.score('resid', 1, -1))",
         "len(v[0]) == 1 and v[1] >= 0.95 and v[2] >= 0.95"),
        ("logit lens: the embeddings and layer 0 read out the current letter",
         "[sum(lens.result.top(l, p)[0][0] == lens.result.tokens[p] for p in range(1, len(lens.result.tokens))) for l in (lw.EMBEDDINGS, 0)]",
         "v == [2 * PERIOD, 2 * PERIOD]"),
        ("logit lens: about 0 before layer 1, about 0.98 after it in the second copy", "lens_table['second copy'].tolist()",
         "v[0] < 0.02 and v[1] < 0.02 and 0.97 <= v[2] <= 0.99"),
        ("tuned lens: about 3.1 vs 8.2 nats after the embeddings, 3.1 vs 4.4 after layer 0, 0 after layer 1 (held out)",
         "kl_table[['logit lens', 'tuned lens']].values.tolist()",
         "7.7 <= v[0][0] <= 8.7 and 2.8 <= v[0][1] <= 3.4 and 4.0 <= v[1][0] <= 4.8 and 2.8 <= v[1][1] <= 3.4 "
         "and max(abs(x) for x in v[2]) < 1e-6"),
        ("tuned lens: the correct letter about 0.017 (chance) before layer 1, about 0.98 after; top guess the current "
         "letter at about 0.19 where the logit lens gives 0.99 and 0.57",
         "(kl_table['tuned: P(correct letter)'].tolist(), kl_table['tuned: top probability'].tolist(), "
         "kl_table['logit: top probability'].tolist(), [all(both.comparison.tuned.top_tokens[both.comparison.tuned.top_index[r, t, 0]] "
         "== both.result.tokens[t] for t in range(PERIOD + 1, 2 * PERIOD)) for r in (0, 1)])",
         "all(0.01 <= x <= 0.025 for x in v[0][:2]) and 0.97 <= v[0][2] <= 0.99 and all(0.15 <= x <= 0.23 for x in v[1][:2]) "
         "and v[2][0] >= 0.98 and 0.52 <= v[2][1] <= 0.61 and v[3] == [True, True]"),
        ("exercise 1: any two induction heads leave the loss far below chance (about 0.21 and 0.39)", "list(pair_losses.values())",
         "0.18 <= v[0] <= 0.24 and 0.35 <= v[1] <= 0.43 and v[1] < CHANCE / 5"),
        ("exercise 2: the control's second copy is below ln 12 (about 2.3)", "second_copy_control", "2.1 <= v < math.log(12)"),
        ("exercise 3: wrong guesses are hardly ever the current letter, almost always a seen letter", "(wrong_current, wrong_seen)",
         "v[0] < 0.05 and v[1] > 0.9"),
        ("exercise 4: the checker accepts the solution; head (1, 2) by hand equals the view's patching score",
         "(metric_ok, my_patch, float(patch_view.result.head_scores[1, 2]))", "v[0] is True and abs(v[1] - v[2]) < 1e-3"),
        ("exercise 5: the checker accepts the solution; the hook gives ablate's loss, zero and mean", "(hook_ok, hook_losses)",
         "v[0] is True and all(abs(a - b) < 1e-5 for a, b in v[1].values())"),
    ],
    "03b_ioi.ipynb": [
        ("IO preferred in about 96% of 200 held-out prompts, mean logit difference about 4.7; corrupted about -0.3",
         "(solved, ld.mean(), ld_corrupted.mean())", "0.95 <= v[0] <= 0.98 and 4.4 <= v[1] <= 5.0 and -0.5 <= v[2] <= 0"),
        ("DLA: the shares add up; the layer-0 MLP about +2.9 (the most), (0, 3) about +1.1, every other head below 0.1, "
         "the last MLP about 0.5",
         "(dla.sum(), float(np.mean(logits)), dla.idxmax(), dla['L0 mlp'], heads_dla.loc[0, 3], heads_dla.abs().drop(index=0).max().max(), "
         "heads_dla.loc[0].drop(3).abs().max(), dla[f'L{s.n_layers - 1} mlp'])",
         "abs(v[0] - v[1]) < 1e-3 and v[2] == 'L0 mlp' and 2.7 <= v[3] <= 3.1 and 1.0 <= v[4] <= 1.2 and v[5] < 0.1 "
         "and v[6] < 0.1 and 0.4 <= v[7] <= 0.6 and 4.8 <= v[1] <= 5.3"),
        ("head patching: (0, 3) about 0.78, no other head more than 0.05", "head_patch",
         "0.74 <= v.loc[0, 3] <= 0.82 and v.stack().drop((0, 3)).abs().max() <= 0.05"),
        ("path patching: (0, 3) direct 0.16, through MLPs 0.90; into layers 1, 2, 3: 0.10, 0.20, 0.04; every other sender 0.08 or less",
         "paths", "0.13 <= v.loc[(0, 3), 'direct to the logits'] <= 0.19 and 0.86 <= v.loc[(0, 3), 'to the logits, MLPs recompute'] <= 0.94 "
         "and all(abs(v.loc[(0, 3), f\"to layer {R}'s heads\"] - x) <= 0.03 for R, x in ((1, 0.10), (2, 0.20), (3, 0.04))) "
         "and v.drop((0, 3)).abs().max().max() <= 0.085"),
        ("(0, 3) attends END -> S2 about 0.98; the other layer-0 heads about 0.4 on IO and S1; no head END->IO much above END->S1 "
         "(gap <= 0.05); every S2 -> S1 and S2 -> S1+1 below 0.4, the strongest about 0.36 in layers 1-2",
         "attn", "0.96 <= v.loc[(0, 3), 'END -> S2'] and all(0.35 <= v.loc[(0, h), c] <= 0.47 for h in range(3) for c in ('END -> IO', 'END -> S1')) "
         "and (v['END -> IO'] - v['END -> S1']).max() <= 0.06 and v[['S2 -> S1 (duplicate)', 'S2 -> S1+1 (induction)']].max().max() < 0.4 "
         "and v['S2 -> S1+1 (induction)'].idxmax()[0] in (1, 2) and 0.32 <= v['S2 -> S1+1 (induction)'].max() <= 0.4"),
        ("exercise 1: both orders solved in about 97-98%, (0, 3) puts more than 0.99 on S2 in both", "pd.DataFrame(by_order)",
         "((0.96 <= v.loc['IO preferred']) & (v.loc['IO preferred'] <= 0.99)).all() and (v.loc['(0, 3): END -> S2'] > 0.99).all()"),
        ("exercise 2: Paul (the last name) lowest, about -0.8; Mary and John tie at about 9.8", "shortcut",
         "min(v, key=v.get) == 'Paul' and -1.2 <= v['Paul'] <= -0.4 and abs(v['Mary'] - v['John']) < 0.1 and 9.4 <= v['Mary'] <= 10.2"),
    ],
    "04_probing_concepts.ipynb": [
        ("tense is decodable from the embeddings (about 0.96) and perfectly from block 0 on", "default_table['accuracy']",
         "0.9 <= v.loc['embeddings'] <= 0.99 and (v.loc[0:] >= 0.99).all()"),
        ("embeddings: ci95 about 0.13, Wilson interval about 0.85-0.99 (crosses 0.9); blocks 0-4: ci95 0",
         "(default_table['ci95'], probe.result.interval()[0][0], probe.result.interval()[1][0])",
         "0.1 <= v[0].loc['embeddings'] <= 0.16 and (v[0].loc[0:4] == 0).all() and 0.82 <= v[1] < 0.9 and 0.97 <= v[2] <= 1"),
        ("the default control is about 0.5 at every layer (0.47-0.57)", "default_table['control']", "v.min() >= 0.44 and v.max() <= 0.6"),
        ("46 verb forms", "len(set(main_verb))", "v == 46"),
        ("the verb-form control reaches 0.68-0.79; selectivity 0.17-0.33", "verb_table[['control', 'selectivity']]",
         "0.66 <= v['control'].min() and v['control'].max() <= 0.8 and 0.15 <= v['selectivity'].min() and v['selectivity'].max() <= 0.35"),
        ("part of speech: about 0.995 at the embeddings, control about 0.96, small selectivity", "pos_table",
         "v.loc['embeddings', 'accuracy'] >= 0.98 and 0.94 <= v.loc['embeddings', 'control'] <= 0.98 and v['selectivity'].max() <= 0.06"),
        ("ambiguous words: about 0.75 at the embeddings (majority about 0.70), 1.00 from block 0", "amb_table",
         "0.68 <= v.loc['embeddings', 'accuracy'] <= 0.82 and 0.65 <= v.loc['embeddings', 'majority'] <= 0.75 and (v.loc[0:, 'accuracy'] >= 0.99).all()"),
        ("exercise 1: subject-noun control 0.85-0.93, selectivity at most about 0.14", "number_table",
         "v['control'].min() >= 0.83 and v['control'].max() <= 0.95 and v['selectivity'].max() <= 0.16"),
        ("exercise 2: clusters agree more with tokens than with part of speech; block 3 about 0.52 vs 0.39", "agreement",
         "(v['with the token string'] > v['with part of speech']).all() and 0.47 <= v.loc[3, 'with the token string'] <= 0.57 and 0.34 <= v.loc[3, 'with part of speech'] <= 0.44"),
        ("exercise 3: still 1.00 at block 2 after removing the direction; block 5 about 0.78", "removed_table['accuracy']",
         "v.loc[2] >= 0.99 and 0.68 <= v.loc[5] <= 0.88"),
    ],
    "05_audit.ipynb": [
        ("default thresholds: 0.05 for the counterfactual shift, 0.1 for DPD and EOD, 0.9 for invariance",
         "full.result.thresholds",
         "v['ctf_gap'] == 0.05 and v['dpd'] == v['eod'] == 0.1 and v['invariance'] == 0.9"),
        ("training names: 160 pairs; the biased model shifts about 0.60 (mean shift about -0.60) and fails; the control < 0.0001 and passes",
         "names_frame[['value', 'passed']].values.tolist() + [audit.result.counterfactual.summary[0]]",
         "0.54 <= v[0][0] <= 0.66 and v[0][1] is False and v[1][0] < 1e-4 and v[1][1] is True"
         " and -0.66 <= v[2]['mean_shift'] <= -0.54 and v[2]['pairs'] == 160"),
        ("unseen names: biased about 0.16 (fails), pairs up to about 0.78, signed mean only about -0.05; control < 0.0001 (passes)",
         "(unseen_frame[['value', 'passed']].values.tolist(), unseen['biased'].counterfactual.summary[0])",
         "0.12 <= v[0][0][0] <= 0.2 and v[0][0][1] is False and v[0][1][0] < 1e-4 and v[0][1][1] is True"
         " and 0.7 <= v[1]['max_abs_shift'] <= 0.86 and -0.08 <= v[1]['mean_shift'] <= -0.02"
         " and abs(v[1]['mean_shift']) < 0.5 * v[1]['mean_abs_shift']"),
        ("casing passes 300/300 for both with a change below 1e-9", "list(casing.values())",
         "all(r['passed'] == r['cases'] == 300 and r['mean_abs_change'] < 1e-9 for r in v)"),
        ("negation fails for both: 5 of 300 for the biased model, none for the control",
         "[next(r for r in res.robustness.summary if r['test'] == 'negation') for res in (full.result, control_full)]",
         "(v[0]['passed'], v[0]['cases'], v[1]['passed'], v[1]['cases']) == (5, 300, 0, 300)"),
        ("typo fails for both, pass rates about 0.86 and 0.88",
         "summary[summary['check'].str.startswith('typo')][['value', 'passed']].values.tolist()",
         "0.83 <= v[0][0] <= 0.89 and 0.85 <= v[1][0] < 0.9 and v[0][1] is False and v[1][1] is False"),
        ("typo: 9 of the biased model's 40 failures misspell the first name, none of the control's 33", "typo_in_names",
         "v == {'biased': (9, 40), 'control': (0, 33)}"),
        ("synonym: biased fails (0.87), control passes (0.904) with a CI of about 0.85 to 0.94",
         "summary[summary['check'].str.startswith('synonym')][['value', 'ci_low', 'ci_high', 'passed']].values.tolist()",
         "0.84 <= v[0][0] < 0.9 and v[0][3] is False and 0.9 <= v[1][0] <= 0.91 and v[1][3] is True"
         " and 0.83 <= v[1][1] <= 0.87 and 0.92 <= v[1][2] <= 0.96"),
        ("irrelevant clause: control passes (0.99), biased fails (0.87)",
         "summary[summary['check'].str.startswith('irrelevant clause')][['value', 'passed']].values.tolist()",
         "0.84 <= v[0][0] <= 0.9 and v[0][1] is False and 0.97 <= v[1][0] and v[1][1] is True"),
        ("the control is 100% accurate, fails DPD (about 0.13), passes EOD (0)", "(groups['accuracy'].tolist(), control_fairness)",
         "all(a == 1.0 for a in v[0]) and 0.11 <= v[1]['demographic_parity_difference'] <= 0.15 and v[1]['equalized_odds_difference'] == 0"),
        ("base rates: no name about 0.55 (the highest), male about 0.44, female about 0.42 (about 0.02 apart)", "groups['selection_rate']",
         "0.51 <= v['no name'] <= 0.59 and 0.4 <= v['male'] <= 0.48 and 0.38 <= v['female'] <= 0.46"
         " and abs(v['male'] - v['female']) <= 0.03 and v.idxmax() == 'no name' and v.idxmin() == 'female'"),
        ("the control's DPD CI is about 0.05 to 0.28: it crosses 0.1", "summary.loc[('control', 7), ['check', 'ci_low', 'ci_high']].tolist()",
         "v[0] == 'demographic parity difference' and 0.03 <= v[1] <= 0.07 and 0.24 <= v[2] <= 0.32"),
        ("the biased model fails both", "biased_fairness", "all(x > 0.1 for x in v.values())"),
        ("exercise 1: the gender audit fails at about 0.09, a seventh of the name shift; its signed mean is positive, CI about -0.01 to +0.06",
         "(gender_audit.result.counterfactual.summary[0], gender_audit.result.summary[0]['passed'], audit.result.summary[0]['value'])",
         "0.07 <= v[0]['mean_abs_shift'] <= 0.11 and v[1] is False and 6 <= v[2] / v[0]['mean_abs_shift'] <= 8"
         " and v[0]['mean_shift'] > 0 and -0.03 <= v[0]['mean_shift_lo'] <= 0 <= v[0]['mean_shift_hi'] <= 0.09"),
        ("exercise 1: brother/sister about +0.36 (all towards sister), he/she and son/daughter |shift| about 0.18 and 0.13, the other five 0.02 or less",
         "(per_pair, shift[[a == 'my brother' for a in cf.term_a]].min())",
         "0.3 <= v[0].loc[('my brother', 'my sister'), 'mean shift'] <= 0.42 and v[1] > 0"
         " and 0.14 <= v[0].loc[('he', 'she'), 'mean |shift|'] <= 0.22 and 0.1 <= v[0].loc[('my son', 'my daughter'), 'mean |shift|'] <= 0.17"
         " and (v[0].drop([('my brother', 'my sister'), ('he', 'she'), ('my son', 'my daughter')])['mean |shift|'] <= 0.02).all()"),
        ("exercise 2: with the name last the shift is still about 0.56 (almost the 0.60) and fails", "(moved.result.summary[0], audit.result.summary[0]['value'])",
         "0.5 <= v[0]['value'] <= 0.62 and v[0]['passed'] is False and v[0]['value'] >= 0.85 * v[1]"),
        ("exercise 3: DPD by hand equals the audit's (about 0.13); over male and female only about 0.02 (passes)",
         "(dpd_by_hand, control_full.groups.differences['demographic_parity_difference'][0], dpd_named)",
         "abs(v[0] - v[1]) < 1e-9 and 0.11 <= v[0] <= 0.15 and v[2] <= 0.03"),
    ],
    "06_features.ipynb": [
        ("Both recover every planted direction (1.00 of them at cosine >= 0.9)", "(recovered_topk, recovered_l1)",
         "v[0] >= 0.99 and v[1] >= 0.99"),
        ("true sparsity about 0.48 active features per sample; TopK always k = 2, the L1 SAE about 1.05",
         "(true_l0, l0_topk, l0_l1)", "0.4 <= v[0] <= 0.56 and v[1] == 2.0 and 0.85 <= v[2] <= 1.25"),
        ("FVU about 0.03 on a new prompt", "fvu", "0.015 <= v <= 0.045"),
        ("zeroing one feature: the prediction drops from about 0.98 to about 0.54", "(before, after)",
         "v[0] >= 0.95 and 0.4 <= v[1] <= 0.7"),
        ("with no edit the logits change by less than 1e-5", "unchanged", "v < 1e-5"),
        ("exercise 1: clamped at twice its activation everywhere, P('x') falls to about 0.03; 'g' about 0.96",
         "(p_doubled, doubled['outputs'][0], doubled['after'][0])", "v[0] <= 0.1 and v[1] == 'g' and v[2] >= 0.9"),
        ("exercise 2: about 53 of the 256 features never fire on the corpus", "dead", "40 <= v <= 70"),
    ],
    "08_circuits.ipynb": [
        ("every prompt right, the held-out people's two-hop prompts too (1.00)", "accuracy", "min(v.values()) >= 0.99"),
        ("the top route is E_21_1 -> 0_26_2 -> 3_45_3, and feature 26 is th.b_feature('Paris')", "(route, paris)",
         "v[0] == ['E_21_1', '0_26_2', '3_45_3'] and v[1] == (0, 26)"),
        ("pruning keeps 8 of the 35 nodes; replacement 0.97, completeness 0.99",
         "(graph.n_nodes, full.n_nodes, graph.replacement_score, graph.completeness_score)",
         "v[0] == 8 and v[1] == 35 and 0.95 <= v[2] <= 0.99 and v[3] >= 0.97"),
        ("the graph predicts 13.2 -> about 8.6; the model falls only to about 10.4 and still answers France (about 0.71; Japan 0.28)",
         "(zeroed.logit_before[0], zeroed.logit_after[0], zeroed.logit_predicted[0], zeroed.top_after[:2])",
         "13.0 <= v[0] <= 13.4 and 10.1 <= v[1] <= 10.7 and 8.3 <= v[2] <= 8.9 and v[3][0][0] == 'France'"
         " and 0.65 <= v[3][0][1] <= 0.77 and v[3][1][0] == 'Japan'"),
        ("heads 0 and 3 of layer 1 look at the city position (0.89 and 0.99), after the edit 0.29 and 0.01",
         "(before[[0, 3], 2], after[[0, 3], 2])", "min(v[0]) >= 0.85 and max(v[1]) <= 0.35"),
        ("the group is 0_35_1 and 0_26_2 (cosine 0.82); zeroed together France falls to about 10.0 (graph: 9.3), still the answer",
         "(city_node.ids, city_node.similarity, both.logit_after[0], both.logit_predicted[0], both.top_after[0][0], view.supernodes)",
         "v[0] == ('0_35_1', '0_26_2') and 0.78 <= v[1] <= 0.86 and 9.7 <= v[2] <= 10.3 and 9.0 <= v[3] <= 9.6"
         " and v[4] == 'France' and v[5] == [[city_node.name, '0_35_1', '0_26_2']]"),
        ("a suggestion, not a finding: feature 35 promotes Berlin first, the Paris feature Paris", "promotes",
         "v == {'0_35_1': 'Berlin', '0_26_2': 'Paris'}"),
        ("exercise 1: Kevin's route goes through layer 0's feature 41 at the city position, the Berlin feature",
         "(kevin_route, th.b_feature('Berlin'))", "v[0][0] == 'E_35_1' and v[0][1] == '0_41_2' and v[1] == (0, 41)"),
        ("exercise 2: the answer falls on all four Paris prompts by about 2 to 4, at most about 0.01 on the others",
         "(paris_change, others_change)", "(v[0] <= -1.5).all() and v[0].min() >= -4.5 and v[1] <= 0.02"),
    ],
    "07_steering.ipynb": [
        ("unsteered the filler sentences are POSITIVE; at strength 2 every one is NEGATIVE at blocks 0 and 1 (suggested: 2)",
         "(flip_strength, flipped.tolist(), (sweep.per_prompt[1, sweep.strengths.index(2), :, negative] > 0.5).mean())",
         "v[0] == 2 and v[1][0] <= 0.05 and v[1][3] == 1.0 and v[2] == 1.0"),
        ("held-out separation 0.95 (block 0) and 0.9 (block 1)", "to_negative.separation.tolist()",
         "0.9 <= v[0] <= 1 and 0.85 <= v[1] <= 0.95"),
        ("LEACE on every token's state leaves accuracy at 1.00 at either block", "erased_everywhere", "min(v.values()) >= 0.99"),
        ("at the readout of the last block: chance (about 0.5); a random direction of the same rank: 1.00",
         "(readout_eraser.rank, erased_readout, random_control)", "v[0] == 1 and 0.4 <= v[1] <= 0.6 and v[2] >= 0.99"),
        ("a fresh probe after erasure sits at the majority baseline; before it, perfect",
         "(amnesic_result.probe_after, amnesic_result.majority, amnesic_result.probe_before)",
         "abs(v[0] - v[1]) <= 0.05 and v[2] >= 0.99"),
        ("block 0 strengths 0 and 2 unchanged; from 4 (2 at block 1) capitals, perplexity 4.5-14 vs about 1.0, flagged",
         "(guard.tolist(), grid.perplexity.mean(2).tolist(), float(grid.base_perplexity.mean()), grid.texts[0][1] == grid.base_texts)",
         "v[0] == [[False, False, True, True, True], [False, True, True, True, True]] and v[2] <= 1.1 and v[3]"
         " and all(4 <= p <= 15 for row in v[1] for p in row if p > 2)"),
        ("exercise 1: on NEGATIVE texts P(POSITIVE) starts at about 0.05; strength 4 at block 0 and 2 at block 1",
         "(negated.suggested, negated.result.probs[:, 0, 1].tolist())", "v[0] == [4.0, 2.0] and max(v[1]) <= 0.1"),
        ("exercise 2: probe at the baseline at both blocks; accuracy falls by about 0.5 only at block 1, random 0",
         "[(r.probe_after - r.majority, r.task_change, r.random_change) for r in amnesic_view.amnesic]",
         "all(abs(a) <= 0.05 for a, _, _ in v) and abs(v[0][1]) <= 0.02 and -0.55 <= v[1][1] <= -0.4"
         " and all(abs(c) <= 0.02 for _, _, c in v)"),
    ],
}


def solutions(nb) -> list[str]:
    """The code of every solution folded in a <details> block, in notebook order."""
    return [m.group(1) for c in nb.cells if c.cell_type == "markdown" for m in SOLUTION.finditer(c.source)]


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_notebook_runs_and_its_claims_hold(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the kernel runs tiny models: one torch thread is faster, and far faster on a shared CPU
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "notebooks are committed without outputs"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for part in ("**Question.**", "**Duration:**", "**Predict first.**", "## Things to try"):
        assert part in text, f"every notebook has {part}"
    sols = solutions(nb)
    assert len(sols) >= 2, "every notebook has at least two exercises with solutions"
    # run the views as JupyterLab does (long work in a background thread), not as a headless executor
    # (which computes inside the cell): a cell that reads a result before `.wait()` fails here
    nb.cells.insert(0, nbformat.v4.new_code_cell(INTERACTIVE))
    nb.cells += [nbformat.v4.new_code_cell(src) for src in sols]
    nb.cells.append(nbformat.v4.new_code_cell(CHECK % (CLAIMS[name],)))
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [(i, o.ename, o.evalue) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "the notebook displays at least one view"
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    results = json.loads(text.split("CLAIMS ", 1)[1])
    failed = {claim: value for claim, (ok, value) in results.items() if not ok}
    assert not failed, failed


# --- no spoilers: every "Predict first" prompt comes before what answers it -------------------------
#
# A prompt is a markdown cell with "**Predict first.**". What answers it is the code cell right after
# it (its output) and the markdown after that code, which states the result. So: the prompt box holds
# only the question (every line a "> " quote, no answer text); the very next cell is code; and that
# code computes something new (assigns a name no earlier cell assigned). A prompt whose code only shows
# names computed before it asks about an answer that was already on screen (04's control column was
# printed two cells before the question about it).
PREDICT = "**Predict first.**"
# what the chapters ask participants to predict, by the data set or model the tour must not run on
# (the sentences they ask about are found in the notebooks themselves, below)
PROMPTED_SOURCES = {
    "lw.datasets.tense": "04 asks which layer knows the tense",
    "lw.teaching.induction_model": "02 and 03 ask what the induction model does",
    "lw.teaching.induction_scores": "03 asks how many layer-1 heads are induction heads",
    "lw.teaching.repeated_prompt": "03 asks about the repeated prompt's heads, loss and logit lens",
    "lw.teaching.ioi_model": "03b asks which parts of the IOI model make its choice",
}


def cells_of(name: str) -> list[dict]:
    return [{**c, "source": "".join(c["source"])} for c in json.loads((NOTEBOOKS / name).read_text())["cells"]]


def examples_of(name: str) -> list[dict]:
    """The cells that hold examples: all but the setup cell (install and imports, the same everywhere)."""
    return [c for c in cells_of(name) if not c["source"].startswith("# Setup.")]


def assigned_names(source: str) -> set[str]:
    import ast

    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def sentences_in_code(source: str) -> set[str]:
    """String literals of three words or more (the example sentences), normalised; f-strings left out."""
    import ast

    tree = ast.parse(source)
    formatted = {id(c) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for c in node.values}
    return {normal(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in formatted and len(n.value.split()) >= 3 and "\n" not in n.value}


def normal(sentence: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", sentence.lower()).strip()


def prompted_sentences(source: str) -> set[str]:
    return {normal(m) for m in re.findall(r'\*"([^"]+)"\*', source)}


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_every_prediction_prompt_comes_before_what_answers_it(name):
    cells = cells_of(name)
    seen, prompts = set(), 0
    for i, c in enumerate(cells):
        if c["cell_type"] == "markdown" and PREDICT in c["source"]:
            prompts += 1
            where = f"{name}, cell {i}: {c['source'][:70]!r}"
            lines = [line for line in c["source"].splitlines() if line.strip()]
            assert all(line.startswith(">") for line in lines), f"{where}: a prompt box holds the question only"
            assert i + 1 < len(cells) and cells[i + 1]["cell_type"] == "code", (
                f"{where}: the cell after a prompt is the code that answers it; the text that states the answer "
                "comes after that code")
            assert assigned_names(cells[i + 1]["source"]) - seen, (
                f"{where}: the code after the prompt computes nothing new, so its answer was on screen before the "
                "question; ask before the cell that first shows it")
        if c["cell_type"] == "code":
            seen |= assigned_names(c["source"])
    assert prompts >= 3, f"{name} asks for predictions"


def test_the_tour_does_not_show_what_a_chapter_asks_to_predict():
    tour = examples_of("00_tour.ipynb")
    tour_code = "\n".join(c["source"] for c in tour if c["cell_type"] == "code")
    tour_sentences = sentences_in_code(tour_code) | set().union(*(prompted_sentences(c["source"]) for c in tour))
    for name in sorted(CLAIMS):
        if name == "00_tour.ipynb":
            continue
        cells = examples_of(name)
        asked = set().union(*(sentences_in_code(c["source"]) for c in cells if c["cell_type"] == "code"),
                            *(prompted_sentences(c["source"]) for c in cells
                              if c["cell_type"] == "markdown" and PREDICT in c["source"]))
        assert not tour_sentences & asked, f"the tour shows {name}'s examples: {sorted(tour_sentences & asked)}"
    for source, why in PROMPTED_SOURCES.items():
        assert source not in tour_code, f"the tour runs {source}, and {why}"
