//! The change register: notices, loading from JSON/NDJSON/CSV, validation and correlation with incidents.

mod conflicts;
mod coordination_config;
mod correlate;
mod correlator_config;
mod csv_rows;
mod factors;
mod import_map;
mod load;
mod notice;
mod outcomes;
mod records;
mod register;
#[cfg(test)]
mod test_support;
mod validate;

pub use conflicts::{
    MAX_RELATED, Warning, WarningKind, is_bcdr_test, is_high_risk, peak_high_risk,
    register_warnings, warnings,
};
pub use coordination_config::{Clock, CoordinationConfig, DailyWindow, TimeOfDay, TypicalMinutes};
pub use correlate::{correlate, judge, only_change_near};
pub use correlator_config::{
    CategoryFit, CorrelatorConfig, RelationWeights, SrvWeights, StatusWeights, UsersAtOnceWeights,
};
pub use import_map::{
    FieldMapping, MappedDefaults, MappedFields, MappedImport, ObjectValue, map_csv, map_servicenow,
};
pub use load::parse_changes;
pub use notice::{
    Category, ChangeNotice, ChangeOwner, ChangeStatus, Expected, direction_name, parse_direction,
};
pub use outcomes::{
    ChangeOutcome, JudgedIncident, Outcome, OwnerOutcomes, change_outcome, summarize,
};
pub use records::{ChangeFileError, ChangeFormat, LoadedChanges, RejectedNotice};
pub use register::ChangeRegister;
pub use validate::FieldError;
