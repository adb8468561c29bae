//! Stormwatch's simulator and evaluation: `gen` writes realistic DSP<->User traffic, change notices and the truth
//! of what should be found; `evaluate` scores a replay's report against that truth; `fit` tunes the correlator's
//! weights on such scores.

pub mod evaluate;
pub mod fit;
pub mod generator;
