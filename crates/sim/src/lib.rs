//! Stormwatch's simulator and evaluation: `gen` writes realistic DSP<->User traffic, change notices and the truth
//! of what should be found; `evaluate` scores a replay's report against that truth; `fit` tunes the correlator's
//! weights on such scores. `truth_file` reads a truth of either format, ours or the independent corpus' (scored by
//! `corpus_score` with the corpus' own rules).

pub mod corpus_score;
pub mod corpus_truth;
pub mod evaluate;
pub mod fit;
pub mod generator;
pub mod truth_file;
