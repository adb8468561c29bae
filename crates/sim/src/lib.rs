//! Stormwatch's simulator and evaluation: `gen` writes realistic DSP<->User traffic, change notices and the truth
//! of what should be found; `evaluate` scores a replay's report against that truth.

pub mod evaluate;
pub mod generator;
