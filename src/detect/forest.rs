//! The supervised part of a model, for machines whose history has labelled failures (its
//! own, or its sister machines'): a random forest that learns what the feature vectors
//! look like during a failure. It sees the same vectors as the healthy detector (the
//! [`FeatureState`] output) and reports the share of its trees that vote "failure", 0..1;
//! the scorer divides that share by the stored threshold, so it is one more normalised
//! statistic in front of the same alarm filter.
//!
//! The forest is fitted by smartcore's `RandomForestClassifier` with a fixed seed (the same
//! rows give the same forest) and then copied into [`ForestParams`], a compact node list of
//! our own: the model file does not depend on smartcore's internal layout, and a vote walks
//! plain vectors without allocating. Bounded: [`TREES`] trees of at most [`MAX_DEPTH`]
//! levels (255 nodes each), a few hundred kB of JSON at most. Fitting time grows with rows
//! times nodes, so fitting sees at most [`MAX_ROWS`] rows: every failure row up to half of
//! that, and healthy rows at an even stride to fill the rest (a stratified subsample that
//! still covers the whole history). Fewer than [`MIN_FAILURES`] failure rows, too few
//! healthy ones or a malformed row is a [`DetectError`], never a panic; a forest whose
//! shape does not fit the model is refused when the model file is loaded.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::{DetectError, MIN_VECTORS};

/// Trees in a forest.
pub const TREES: u16 = 50;
/// Levels of a tree, the root included.
pub const MAX_DEPTH: u16 = 8;
/// Fewest rows labelled as failure a forest is fitted on.
pub const MIN_FAILURES: usize = 10;
/// Most rows a forest is fitted on (see the module documentation).
pub const MAX_ROWS: usize = 20_000;
/// Fewest rows a leaf holds: leaves of single rows would learn the noise of one sample.
const MIN_LEAF: usize = 3;
/// The seed of every fit.
const SEED: u64 = 0x666f_7265;
/// The vote share at which a vector counts as over, unless the training options say
/// otherwise: three trees in four. A bare majority let a forest trained on other machines'
/// faults vote on too many healthy stretches (SKAB development files, leave one file out:
/// FAR 19.3 % at 0.5, 13.5 % at 0.75, for F1 0.843 and 0.841).
pub use crate::config::params::DEFAULT_CLASSIFIER_THRESHOLD as DEFAULT_THRESHOLD;

/// One node of a tree, as stored, with `p`, the share of failure rows the node held in
/// training (on the tree's bootstrap sample). A leaf is `[class, p]`: the class it votes
/// for (0 healthy, 1 failure). A split is `[feature, value, low, high, p]`: go to node
/// `low` when the feature is at most `value`, else to `high`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Node {
    Leaf(u8, f64),
    Split(u32, f64, u32, u32, f64),
}

impl Node {
    fn p(&self) -> f64 {
        match *self {
            Node::Leaf(_, p) | Node::Split(.., p) => p,
        }
    }
}

/// What a forest was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestTraining {
    /// Labelled vectors offered.
    pub rows: usize,
    /// Of which labelled as failure.
    pub failures: usize,
    /// Rows the trees were fitted on, after subsampling.
    pub fitted: usize,
}

/// A fitted forest, as stored in the model file (`classifier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Vote share (0..1] that scores 1.0, the alarm threshold.
    pub threshold: f64,
    /// Each tree's nodes, root first; children come after their parent.
    pub trees: Vec<Vec<Node>>,
    pub training: ForestTraining,
}

impl ForestParams {
    /// Fits a forest on feature vectors `rows` (each of length `m`) labelled 0 (healthy)
    /// or 1 (failure); a vector counts as over when a `threshold` share of its trees vote
    /// failure.
    pub fn fit(rows: &[Vec<f64>], labels: &[u8], m: usize, threshold: f64) -> Result<ForestParams, DetectError> {
        if rows.len() != labels.len() || m == 0 {
            return Err(DetectError::Shape(m));
        }
        if let Some(bad) = rows.iter().find(|r| r.len() != m || r.iter().any(|x| !x.is_finite())) {
            return Err(DetectError::Shape(bad.len()));
        }
        if labels.iter().any(|&l| l > 1) {
            return Err(DetectError::Numeric("labels must be 0 or 1".into()));
        }
        let failures = labels.iter().filter(|&&l| l == 1).count();
        if failures < MIN_FAILURES {
            return Err(DetectError::TooFewFailures(failures));
        }
        if rows.len() - failures < MIN_VECTORS {
            return Err(DetectError::TooFewVectors(rows.len() - failures));
        }
        let keep = subsample(labels, MAX_ROWS);
        let flat: Vec<f64> = keep.iter().flat_map(|&i| rows[i].iter().copied()).collect();
        let x = DenseMatrix::new(keep.len(), m, flat, false).map_err(|e| DetectError::Numeric(e.to_string()))?;
        let y: Vec<u32> = keep.iter().map(|&i| u32::from(labels[i])).collect();
        let params = RandomForestClassifierParameters::default()
            .with_n_trees(TREES)
            .with_max_depth(MAX_DEPTH)
            .with_min_samples_leaf(MIN_LEAF)
            .with_seed(SEED);
        let forest = RandomForestClassifier::fit(&x, &y, params).map_err(|e| DetectError::Numeric(e.to_string()))?;
        let trees = copy_trees(&forest).map_err(|e| DetectError::Numeric(format!("unexpected forest layout: {e}")))?;
        Ok(ForestParams {
            threshold,
            trees,
            training: ForestTraining {
                rows: rows.len(),
                failures,
                fitted: keep.len(),
            },
        })
    }

    /// The share of trees voting failure for feature vector `z`. Writes each sensor's part
    /// in that vote to `contrib` (length `z.len()`).
    pub fn vote(&self, z: &[f64], contrib: &mut [f64]) -> f64 {
        contrib.fill(0.0);
        let failures: usize = self.trees.iter().map(|t| usize::from(walk(t, z, contrib) == 1)).sum();
        failures as f64 / self.trees.len().max(1) as f64
    }

    /// Nodes over all trees.
    pub fn nodes(&self) -> usize {
        self.trees.iter().map(Vec::len).sum()
    }

    /// Checks the forest against the vector length (a hand-edited or corrupt file): every
    /// split names a sensor and points forward to existing nodes, so a vote always ends.
    pub fn check(&self, m: usize) -> Result<(), String> {
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err("classifier threshold must be in (0, 1]".into());
        }
        if self.trees.is_empty() || self.trees.iter().any(Vec::is_empty) {
            return Err("classifier has an empty tree".into());
        }
        for (t, tree) in self.trees.iter().enumerate() {
            for (i, node) in tree.iter().enumerate() {
                let ok = (0.0..=1.0).contains(&node.p())
                    && match *node {
                        Node::Leaf(class, _) => class <= 1,
                        Node::Split(f, v, low, high, _) => {
                            let forward = |c: u32| (c as usize) > i && (c as usize) < tree.len();
                            (f as usize) < m && v.is_finite() && forward(low) && forward(high)
                        }
                    };
                if !ok {
                    return Err(format!("classifier tree {t} node {i} is not valid for {m} sensors"));
                }
            }
        }
        Ok(())
    }
}

/// Follows `z` from the root to a leaf and returns the leaf's class. Children come after
/// their parent (checked at load), so the walk ends; a malformed index ends it as a
/// healthy vote.
///
/// Attribution: each split on the path credits its sensor with how much it raised the
/// share of failure rows (child's `p` over the node's, when positive; the path
/// decomposition of tree interpreters). Splits that lowered it, and splits a tree made on
/// a sensor only because the forest drew it at random, earn (almost) nothing, so the
/// sensors named are those whose values led the trees towards failure for this vector.
fn walk(tree: &[Node], z: &[f64], contrib: &mut [f64]) -> u8 {
    let mut i = 0;
    while let Some(node) = tree.get(i) {
        match *node {
            Node::Leaf(class, _) => return class,
            Node::Split(f, v, low, high, p) => {
                let x = z.get(f as usize).copied().unwrap_or(f64::NAN);
                // NaN goes high, as in smartcore (`x <= v` is false).
                let next = if x <= v { low } else { high } as usize;
                let Some(child) = tree.get(next).filter(|_| next > i) else {
                    return 0;
                };
                if let Some(c) = contrib.get_mut(f as usize) {
                    *c += (child.p() - p).max(0.0);
                }
                i = next;
            }
        }
    }
    0
}

/// Row indices to fit on: all of them up to `max`; past that every failure row up to half
/// of `max` and healthy rows at an even stride for the rest, in time order.
fn subsample(labels: &[u8], max: usize) -> Vec<usize> {
    if labels.len() <= max {
        return (0..labels.len()).collect();
    }
    let failures: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == 1).collect();
    let healthy: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == 0).collect();
    let failures = strided(&failures, max / 2);
    let healthy = strided(&healthy, max - failures.len());
    let mut keep = [failures, healthy].concat();
    keep.sort_unstable();
    keep
}

/// At most `n` of `idx`, evenly spread.
fn strided(idx: &[usize], n: usize) -> Vec<usize> {
    if idx.len() <= n {
        return idx.to_vec();
    }
    (0..n).map(|k| idx[k * idx.len() / n]).collect()
}

/// Copies smartcore's trees into our nodes. Its trees are not public, but serialisable:
/// each node has `output` (an index into `classes`, the majority) and `impurity` (Gini),
/// and a split also `split_feature`, `split_value` and `true_child`/`false_child` (taken
/// when the feature is at most the value, or not).
fn copy_trees(forest: &RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>) -> Result<Vec<Vec<Node>>, String> {
    let value = serde_json::to_value(forest).map_err(|e| e.to_string())?;
    let classes: Vec<u64> = value["classes"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if classes != [0, 1] {
        return Err(format!("classes {classes:?}, expected [0, 1]"));
    }
    let trees = value["trees"].as_array().ok_or("no trees")?;
    trees
        .iter()
        .map(|t| {
            let nodes = t["nodes"].as_array().ok_or("a tree without nodes")?;
            nodes.iter().map(copy_node).collect()
        })
        .collect()
}

fn copy_node(n: &Value) -> Result<Node, String> {
    let index = |key: &str| n[key].as_u64().and_then(|v| u32::try_from(v).ok());
    let output = index("output")
        .and_then(|o| u8::try_from(o).ok())
        .ok_or("a node without output")?;
    // Two classes: Gini g = 2p(1 - p), so the majority's share is (1 + sqrt(1 - 2g)) / 2.
    let major = n["impurity"]
        .as_f64()
        .map_or(1.0, |g| (1.0 + (1.0 - 2.0 * g).max(0.0).sqrt()) / 2.0);
    let p = if output == 1 { major } else { 1.0 - major };
    // Three decimals are plenty for attribution and keep the file small.
    let p = (p * 1000.0).round() / 1000.0;
    match (index("true_child"), index("false_child")) {
        (Some(low), Some(high)) => {
            let feature = index("split_feature").ok_or("a split without feature")?;
            let value = n["split_value"].as_f64().ok_or("a split without value")?;
            Ok(Node::Split(feature, value, low, high, p))
        }
        _ => Ok(Node::Leaf(output, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two features; failures sit in a corner that neither feature alone singles out.
    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<u8>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|_| {
                let (a, b) = (rng.f64() * 2.0 - 1.0, rng.f64() * 2.0 - 1.0);
                let label = u8::from(a > 0.3 && b < -0.3);
                (vec![a, b, rng.f64()], label)
            })
            .unzip()
    }

    #[test]
    fn separates_a_failure_class_deterministically() {
        let (rows, labels) = data(2000, 1);
        let f = ForestParams::fit(&rows, &labels, 3, DEFAULT_THRESHOLD).unwrap();
        assert_eq!(f.trees.len(), usize::from(TREES));
        assert!(f.trees.iter().all(|t| t.len() < 1 << MAX_DEPTH));
        f.check(3).unwrap();
        let (test, truth) = data(500, 2);
        let mut contrib = vec![0.0; 3];
        let mut wrong = 0;
        for (z, &l) in test.iter().zip(&truth) {
            let share = f.vote(z, &mut contrib);
            wrong += usize::from((share >= f.threshold) != (l == 1));
            if l == 1 && share > 0.9 {
                assert!(
                    contrib[2] < contrib[0].max(contrib[1]),
                    "noise feature leads: {contrib:?}"
                );
            }
        }
        assert!(wrong < 25, "{wrong} of 500 misclassified");
        assert_eq!(
            ForestParams::fit(&rows, &labels, 3, DEFAULT_THRESHOLD).unwrap(),
            f,
            "same rows, same forest"
        );
    }

    #[test]
    fn round_trips_through_json_and_refuses_bad_shapes() {
        let (rows, labels) = data(400, 3);
        let f = ForestParams::fit(&rows, &labels, 3, DEFAULT_THRESHOLD).unwrap();
        let back: ForestParams = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(f.check(2).is_err(), "a split on a sensor the model does not have");
        let mut bad = f.clone();
        bad.trees[0][0] = Node::Split(0, 0.0, 0, 0, 0.5);
        assert!(bad.check(3).is_err(), "a loop");
    }

    #[test]
    fn too_few_failures_is_an_error() {
        let (rows, mut labels) = data(400, 4);
        labels.iter_mut().for_each(|l| *l = 0);
        labels[..MIN_FAILURES - 1].iter_mut().for_each(|l| *l = 1);
        let e = ForestParams::fit(&rows, &labels, 3, DEFAULT_THRESHOLD).unwrap_err();
        assert!(matches!(e, DetectError::TooFewFailures(9)), "{e}");
        assert!(e.to_string().contains("at least 10"), "{e}");
        let mut short = rows.clone();
        short[5].pop();
        assert!(matches!(
            ForestParams::fit(&short, &labels, 3, DEFAULT_THRESHOLD),
            Err(DetectError::Shape(2))
        ));
    }

    #[test]
    fn subsamples_keep_failures_and_spread_healthy_rows() {
        let labels: Vec<u8> = (0..1000).map(|i| u8::from(i % 10 == 0)).collect();
        let keep = subsample(&labels, 200);
        assert_eq!(keep.len(), 200);
        assert_eq!(keep.iter().filter(|&&i| labels[i] == 1).count(), 100);
        assert!(keep.windows(2).all(|w| w[0] < w[1]));
        assert!(*keep.last().unwrap() > 900, "covers the whole history");
    }
}
