//! The deterministic engine core: per-User windows, event time, detectors, incident lifecycle.
