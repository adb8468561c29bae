//! Every weight and threshold of the correlator, with what it means: one place to read and tune them, loaded from
//! the service's TOML config (`[engine.correlator]`) and shown by `serve --print-config`.

use serde::{Deserialize, Serialize};

use super::notice::Category;
use crate::incident::IncidentKind;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelatorConfig {
    /// A top suspect scoring at least this explains the incident; below it, an unregistered change is suspected.
    pub fit_threshold: f64,
    /// Suspects scoring less are not worth a reader's attention.
    pub min_suspect_score: f64,
    /// Suspects listed at most.
    pub max_suspects: usize,
    /// How far past its declared `rate_factor` traffic may go and still be the declared impact (rates are noisy).
    pub expected_tolerance: f64,
    /// From this many Users hit at once, a DCC-side cause is the natural explanation. Not a setting of its own:
    /// `EngineConfig::correlator` copies the network grouping's `min_users` here, so the two never disagree.
    #[serde(skip)]
    pub common_cause_users: usize,
    /// Outside the window the timing score starts at 1 and halves every this many seconds of distance before the
    /// window opened (a window may be a little wrong, rarely very wrong)...
    pub before_window_half_life_s: i64,
    /// ... or after it closed (work overruns its window more often than it starts early).
    pub after_window_half_life_s: i64,
    /// Another of the User's changes counts as "near the onset" while its timing score is at least this; a change
    /// with no such neighbour is the User's only one, and a poor category fit costs it less.
    pub alone_min_timing: f64,
    /// Another User's request storm can explain a backlog without delivery failures when it began up to this long
    /// before the backlog's onset...
    pub storm_horizon_s: i64,
    /// ... or up to this long after it (both onsets are estimates).
    pub storm_slack_s: i64,
    pub relation: RelationWeights,
    pub status: StatusWeights,
    pub srvs: SrvWeights,
    pub users_at_once: UsersAtOnceWeights,
    pub category_fit: CategoryFit,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            fit_threshold: 0.5,
            min_suspect_score: 0.05,
            max_suspects: 5,
            expected_tolerance: 1.25,
            common_cause_users: 3,
            before_window_half_life_s: 10 * 60,
            after_window_half_life_s: 56 * 60,
            alone_min_timing: 0.25,
            storm_horizon_s: 30 * 60,
            storm_slack_s: 120,
            relation: RelationWeights::default(),
            status: StatusWeights::default(),
            srvs: SrvWeights::default(),
            users_at_once: UsersAtOnceWeights::default(),
            category_fit: CategoryFit::default(),
        }
    }
}

/// How a change can reach the incident's Users at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelationWeights {
    /// The User's own change.
    pub same_user: f64,
    /// A DCC change when many Users (or the network) are hit.
    pub dcc_widespread: f64,
    /// A DCC change when one or few Users are hit.
    pub dcc_local: f64,
    /// Another User's device change, reaching this User through the devices' alerts.
    pub device_path: f64,
    /// A User's change, that User being one of many in a network-wide incident.
    pub among_users_hit: f64,
    /// Another User's change whose request storm began just before a backlog without delivery failures.
    pub shared_capacity: f64,
}

impl Default for RelationWeights {
    fn default() -> Self {
        RelationWeights {
            same_user: 1.0,
            dcc_widespread: 1.0,
            dcc_local: 0.5,
            device_path: 0.9,
            among_users_hit: 0.4,
            shared_capacity: 0.9,
        }
    }
}

/// The change's status as evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusWeights {
    pub in_progress: f64,
    pub completed: f64,
    /// Still marked planned: it may have started without anyone updating the notice.
    pub planned: f64,
    /// Rolled back, perhaps because of this incident.
    pub rolled_back: f64,
    /// Cancelled, so it should not have happened.
    pub cancelled: f64,
}

impl Default for StatusWeights {
    fn default() -> Self {
        StatusWeights {
            in_progress: 1.0,
            completed: 1.0,
            planned: 0.95,
            rolled_back: 0.8,
            cancelled: 0.2,
        }
    }
}

/// The change's SRVs against the incident's traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SrvWeights {
    pub shared: f64,
    /// Either side names no SRV, so nothing can be compared.
    pub not_compared: f64,
    /// Both name SRVs and none is in common.
    pub disjoint: f64,
}

impl Default for SrvWeights {
    fn default() -> Self {
        SrvWeights {
            shared: 1.0,
            not_compared: 0.9,
            disjoint: 0.6,
        }
    }
}

/// Many Users at once point away from one User's own change and towards a common, DCC-side cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersAtOnceWeights {
    /// A DCC change when only one or few Users are hit.
    pub dcc_few_users: f64,
    /// A User's own change with `n` Users hit scores `start - per_user * n`, never below `floor`.
    pub start: f64,
    pub per_user: f64,
    pub floor: f64,
}

impl Default for UsersAtOnceWeights {
    fn default() -> Self {
        UsersAtOnceWeights {
            dcc_few_users: 0.6,
            start: 1.1,
            per_user: 0.15,
            floor: 0.4,
        }
    }
}

/// What each change category typically breaks: a score per incident kind, in the order backlog, request storm,
/// reject storm, alert storm; refined for backlogs by the delivery-failure reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CategoryFit {
    pub network: [f64; 4],
    pub certificate: [f64; 4],
    pub endpoint: [f64; 4],
    pub dcc_maintenance: [f64; 4],
    pub application: [f64; 4],
    pub device: [f64; 4],
    pub campaign: [f64; 4],
    pub other: [f64; 4],
    /// A network change while deliveries fail with TLS errors, or a certificate change while they are refused or
    /// time out: possible, but the other category would fit better.
    pub mismatched_failure: f64,
    /// An application change while a backlog's deliveries partly succeed (`WARN`): a receive handler losing some
    /// messages looks like this.
    pub application_partial_delivery: f64,
    /// When a change is the User's only one near the onset, this share of a fit's shortfall (below `fits`) is given
    /// back: `score + (1 - score) * alone_lift`.
    pub alone_lift: f64,
    /// From this score a category "fits" the anomaly; from `may_cause` it "may cause" it; below, it "rarely causes"
    /// it. Only the words depend on these.
    pub fits: f64,
    pub may_cause: f64,
}

impl Default for CategoryFit {
    fn default() -> Self {
        let delivery = [1.0, 0.2, 0.2, 0.2];
        CategoryFit {
            network: delivery,
            certificate: delivery,
            endpoint: delivery,
            dcc_maintenance: [1.0, 0.6, 0.6, 0.6],
            application: [0.3, 1.0, 1.0, 0.2],
            device: [0.2, 0.2, 0.2, 1.0],
            campaign: [0.3, 0.9, 0.3, 0.3],
            other: [0.5; 4],
            mismatched_failure: 0.7,
            application_partial_delivery: 0.9,
            alone_lift: 0.11,
            fits: 0.9,
            may_cause: 0.5,
        }
    }
}

impl CategoryFit {
    /// The table's score of `category` for `kind`, before the failure reason is considered.
    pub fn score(&self, category: Category, kind: IncidentKind) -> f64 {
        let row = match category {
            Category::Network => &self.network,
            Category::Certificate => &self.certificate,
            Category::Endpoint => &self.endpoint,
            Category::DccMaintenance => &self.dcc_maintenance,
            Category::Application => &self.application,
            Category::Device => &self.device,
            Category::Campaign => &self.campaign,
            Category::Other => &self.other,
        };
        let column = match kind {
            IncidentKind::Backlog => 0,
            IncidentKind::RequestStorm => 1,
            IncidentKind::RejectStorm => 2,
            IncidentKind::AlertStorm => 3,
        };
        row[column]
    }

    /// Whether the category can plausibly explain the kind at all (it "may cause" it or better).
    pub fn plausible(&self, category: Category, kind: IncidentKind) -> bool {
        self.score(category, kind) >= self.may_cause
    }
}
