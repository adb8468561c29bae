//! The change register: notices, loading from JSON/NDJSON/CSV, validation and correlation with incidents.
