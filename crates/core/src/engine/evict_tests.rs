//! Unit tests of evicting idle Users from the engine.
use super::super::*;
use super::{Evicted, EvictedUsers};
use crate::telemetry::{Event, EventKind};

const T0: i64 = 1_773_100_800_000;
const IDLE_S: i64 = 600;

fn user(n: u64) -> Eui64 {
    Eui64(0x90B3_D51F_3001_0000 + n)
}

fn made_up(n: u64) -> Eui64 {
    Eui64(0x0200_0000_0000_0000 + n)
}

fn engine(max_users: usize) -> Engine {
    let config = EngineConfig {
        max_users,
        evict_idle_after_s: IDLE_S,
        ..EngineConfig::default()
    };
    Engine::new(config, ChangeRegister::default())
}

fn send(engine: &mut Engine, second: i64, user: Eui64, kind: EventKind, value: u64) {
    let event = Event::new(T0 + second * 1000 + 100, user, kind, value);
    engine.ingest(&event).unwrap();
}

/// Normal life of a User for one second: requests, responses queued and delivered.
fn normal(engine: &mut Engine, second: i64, who: Eui64) {
    send(engine, second, who, EventKind::Request, 40);
    send(engine, second, who, EventKind::QueuedResponse, 20);
    send(engine, second, who, EventKind::Delivered, 20);
}

/// Normal life until second 300, then responses queued behind a firewall, none delivered, for 200 s; not a line
/// since (its exporter stopped too).
fn strand(engine: &mut Engine, second: i64, who: Eui64) {
    strand_from(engine, second, who, 300);
}

/// [`strand`], with the firewall going up at second `from`.
fn strand_from(engine: &mut Engine, second: i64, who: Eui64, from: i64) {
    match second - from {
        ..0 => normal(engine, second, who),
        0..200 => {
            send(engine, second, who, EventKind::Request, 40);
            send(engine, second, who, EventKind::QueuedResponse, 20);
        }
        _ => {}
    }
}

/// Every place the engine keeps for a User names that User.
fn assert_places_consistent(engine: &Engine) {
    for (key, state) in engine.users() {
        assert_eq!(engine.user_key(state.id), Some(key));
        assert!(engine.anomalies.contains_key(key));
    }
    assert_eq!(engine.index.len(), engine.users.len());
    assert_eq!(engine.anomalies.len(), engine.users.len());
    for incident in engine.incidents.iter() {
        assert!(incident.members.iter().all(|&m| engine.user(m).is_some()));
    }
}

fn kinds_of(engine: &Engine, who: Eui64) -> Vec<IncidentKind> {
    let name = who.to_string();
    engine
        .incident_records()
        .iter()
        .filter(|r| r.user == name || r.users.contains(&name))
        .map(|r| r.kind)
        .collect()
}

#[test]
fn made_up_users_that_fall_silent_give_their_slots_back() {
    let mut engine = engine(50);
    let keeper = user(0);
    send(&mut engine, 0, keeper, EventKind::Request, 5);
    for n in 0..49 {
        send(&mut engine, 0, made_up(n), EventKind::Request, 1);
    }
    let newcomer = Event::new(T0 + 10_100, user(1), EventKind::Request, 5);
    for second in 1..=10 {
        normal(&mut engine, second, keeper);
    }
    assert_eq!(
        engine.ingest(&newcomer),
        Err(IngestError::UserTableFull(50)),
        "the table is full of made-up Users"
    );
    for second in 11..IDLE_S + 60 {
        normal(&mut engine, second, keeper);
    }
    assert_eq!(engine.user_count(), 1, "only the keeper is left");
    assert_eq!(engine.evicted_total(), 49);
    let gone = engine.evicted(made_up(7)).expect("recorded as evicted");
    assert_eq!(gone.last_event_ms, T0);
    assert!(gone.evicted_ms >= T0 + IDLE_S * 1000);
    assert_places_consistent(&engine);
    let later = Event::new(
        T0 + (IDLE_S + 60) * 1000 + 100,
        user(1),
        EventKind::Request,
        5,
    );
    assert_eq!(
        engine.ingest(&later),
        Ok(Ingested::Taken),
        "a real User gets in"
    );
    assert_eq!(engine.user_count(), 2);
    // A made-up User that comes back is a new User again, and no longer listed as evicted.
    let back = Event::new(
        T0 + (IDLE_S + 60) * 1000 + 200,
        made_up(7),
        EventKind::Request,
        1,
    );
    assert_eq!(engine.ingest(&back), Ok(Ingested::Taken));
    assert_eq!(engine.evicted(made_up(7)), None);
    assert_places_consistent(&engine);
}

/// A silent User with messages waiting is the firewall incident itself: it is never idle.
#[test]
fn a_user_with_queued_messages_or_an_incident_is_never_evicted() {
    let mut engine = engine(10);
    let keeper = user(0);
    let stranded = user(1);
    let stormy = user(2);
    for second in 0..400 {
        normal(&mut engine, second, keeper);
        if second < 300 {
            normal(&mut engine, second, stormy);
        }
        strand_from(&mut engine, second, stranded, 500);
    }
    // The stormy User storms for a minute, calms down, then falls silent.
    for second in 400..700 {
        normal(&mut engine, second, keeper);
        let requests = if second < 460 { 400 } else { 40 };
        send(&mut engine, second, stormy, EventKind::Request, requests);
        // The firewall goes up after the storm opened: the storm's incident is older and can be pruned first.
        strand_from(&mut engine, second, stranded, 500);
    }
    for second in 700..700 + 3 * IDLE_S {
        normal(&mut engine, second, keeper);
    }
    assert!(
        engine.user_key(stranded).is_some(),
        "a User with a queue stays"
    );
    let place = engine.user_key(stranded).unwrap();
    assert!(engine.user(place).unwrap().depth() >= 1_000);
    assert!(kinds_of(&engine, stranded).contains(&IncidentKind::Backlog));
    assert!(
        kinds_of(&engine, stormy).contains(&IncidentKind::RequestStorm),
        "{:?}",
        engine.incident_records()
    );
    assert!(
        engine.user_key(stormy).is_some(),
        "an incident still in the engine names the stormy User: it stays until the incident is pruned"
    );
    assert_eq!(engine.evicted_total(), 0);
    // Once the resolved storm is pruned (the service persists it first), nothing needs the stormy User.
    assert!(engine.prune_closed(60) >= 1);
    let end = 700 + 3 * IDLE_S;
    for second in end..end + 30 {
        normal(&mut engine, second, keeper);
    }
    assert_eq!(
        engine.user_key(stormy),
        None,
        "evicted once nothing names it"
    );
    assert!(engine.user_key(stranded).is_some());
    assert_places_consistent(&engine);
}

/// Keeper, a made-up User, then a stranded User with an open backlog, until the made-up User (in the middle of the
/// table) is evicted. Returns the made-up User's key and the stranded User's, both taken before the eviction.
fn evict_the_middle_user(engine: &mut Engine) -> (UserKey, UserKey) {
    let (keeper, stranded) = (user(0), user(1));
    let mut keys = None;
    for second in 0..IDLE_S + 60 {
        normal(engine, second, keeper);
        if second == 0 {
            send(engine, second, made_up(1), EventKind::Request, 1);
        }
        strand(engine, second, stranded);
        // The first lines wait for the source's event time: the Users are in the table a few seconds on.
        if second == 60 {
            let order: Vec<Eui64> = engine.users().map(|(_, state)| state.id).collect();
            assert_eq!(order, [keeper, made_up(1), stranded], "in the middle");
            let key = |id| engine.user_key(id).expect("in the table");
            keys = Some((key(made_up(1)), key(stranded)));
        }
    }
    assert_eq!(engine.evicted_total(), 1);
    assert!(engine.evicted(made_up(1)).is_some());
    keys.expect("taken at second 60")
}

/// A User leaving the middle of the table moves no other: the open incident of the User after it still names
/// that User, under the key it had.
#[test]
fn an_open_incident_keeps_its_user_when_another_leaves() {
    let mut engine = engine(10);
    let stranded = user(1);
    let (_, stranded_key) = evict_the_middle_user(&mut engine);
    assert_eq!(engine.user_key(stranded), Some(stranded_key), "not moved");
    let open = engine.open_incidents();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].user, stranded.to_string());
    assert!(engine.user(stranded_key).unwrap().depth() >= 1_000);
    assert!(engine.watches_of(stranded_key).iter().all(Option::is_none));
    assert_places_consistent(&engine);
}

/// An evicted User that comes back gets a fresh key, even in its old slot: its old key names nobody, not it and
/// not whoever took the slot; the other User's open incident is untouched.
#[test]
fn a_returning_user_gets_a_fresh_key_and_its_old_key_names_nobody() {
    let mut engine = engine(10);
    let stranded = user(1);
    let (old, stranded_key) = evict_the_middle_user(&mut engine);
    assert!(engine.user(old).is_none(), "the old key names nobody");
    assert!(engine.watches_of(old).iter().all(Option::is_none));
    let back = IDLE_S + 60;
    send(&mut engine, back, made_up(1), EventKind::Request, 1);
    strand(&mut engine, back, stranded);
    let fresh = engine.user_key(made_up(1)).expect("back in the table");
    assert_ne!(fresh, old);
    assert!(engine.user(old).is_none(), "still names nobody");
    assert_eq!(engine.user(fresh).map(|u| u.id), Some(made_up(1)));
    assert!(engine.evicted(made_up(1)).is_none(), "back, not evicted");
    assert_eq!(engine.user_key(stranded), Some(stranded_key));
    let open = engine.open_incidents();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].user, stranded.to_string());
    assert_places_consistent(&engine);
}

/// A snapshot taken with a freed slot in the table lists the Users left, and the restored engine's incidents name
/// the same Users under its own keys.
#[test]
fn a_snapshot_after_an_eviction_restores_the_open_incident() {
    let mut engine = engine(10);
    let stranded = user(1);
    evict_the_middle_user(&mut engine);
    let bytes = engine.snapshot().unwrap();
    let restored =
        Engine::restore(&bytes, engine.config().clone(), ChangeRegister::default()).unwrap();
    assert_eq!(restored.user_count(), 2);
    assert_eq!(restored.open_incidents(), engine.open_incidents());
    assert_eq!(restored.incident_records(), engine.incident_records());
    assert_eq!(restored.open_incidents()[0].user, stranded.to_string());
    assert!(restored.user_key(made_up(1)).is_none());
    assert_places_consistent(&restored);
}

/// Baselines are relearned, not kept: a returning User is cold, pages nothing, and learns its rate again.
#[test]
fn a_returning_user_is_not_paged_for_its_normal_traffic() {
    let mut engine = engine(10);
    let keeper = user(0);
    let returning = user(1);
    for second in 0..900 {
        normal(&mut engine, second, keeper);
        normal(&mut engine, second, returning);
    }
    // An hour of silence, and the User is evicted.
    let back = 900 + 3_600;
    for second in 900..back {
        normal(&mut engine, second, keeper);
    }
    assert!(engine.evicted(returning).is_some(), "evicted while silent");
    for second in back..back + 1_200 {
        normal(&mut engine, second, keeper);
        normal(&mut engine, second, returning);
    }
    engine.finish();
    assert_eq!(kinds_of(&engine, returning), Vec::new());
    assert!(engine.incident_records().is_empty());
    assert!(engine.watches().next().is_none());
    let place = engine.user_key(returning).unwrap();
    let baseline = engine.user(place).unwrap().flow_baselines()[0];
    assert!((baseline - 40.0).abs() < 1.0, "relearned: {baseline}");
}

/// A User silent for minutes but not evicted (its exporter stopped, or eviction is off) learns nothing while it
/// is unheard, so its normal traffic does not page when it resumes. It paged for silences of 15 minutes and more
/// when every closed second taught its baselines a zero.
#[test]
fn a_user_silent_for_minutes_is_not_paged_when_it_resumes() {
    for silence_min in [15, 30, 50] {
        let mut engine = Engine::new(
            EngineConfig {
                evict_idle_after_s: 0,
                ..EngineConfig::default()
            },
            ChangeRegister::default(),
        );
        let (keeper, returning) = (user(0), user(1));
        for second in 0..900 {
            normal(&mut engine, second, keeper);
            normal(&mut engine, second, returning);
        }
        let back = 900 + silence_min * 60;
        for second in 900..back {
            normal(&mut engine, second, keeper);
        }
        for second in back..back + 900 {
            normal(&mut engine, second, keeper);
            normal(&mut engine, second, returning);
        }
        engine.finish();
        assert!(
            engine.incident_records().is_empty(),
            "after {silence_min} min of silence: {:#?}",
            engine.incident_records()
        );
        let place = engine.user_key(returning).unwrap();
        let baseline = engine.user(place).unwrap().flow_baselines()[0];
        assert!(
            (baseline - 40.0).abs() < 1.0,
            "kept through the silence: {baseline}"
        );
    }
}

/// Made-up Users that each send one line per idle period are active Users, by design: they keep their slots and
/// still lock new Users out. The User directory is the defence against that (unknown Users never take a slot).
#[test]
fn made_up_users_kept_alive_still_fill_the_table() {
    let mut engine = engine(20);
    let keeper = user(0);
    for second in 0..3 * IDLE_S {
        normal(&mut engine, second, keeper);
        if second % (IDLE_S / 2) == 0 {
            for n in 0..19 {
                send(&mut engine, second, made_up(n), EventKind::Request, 1);
            }
        }
    }
    assert_eq!(engine.evicted_total(), 0);
    let newcomer = Event::new(T0 + 3 * IDLE_S * 1000, user(1), EventKind::Request, 5);
    assert_eq!(
        engine.ingest(&newcomer),
        Err(IngestError::UserTableFull(20))
    );
}

/// When all the data stops (an exporter outage, a restart), silence is missing data: nobody is idle for it, and
/// every User keeps its baselines when the data resumes.
#[test]
fn a_gap_in_all_the_data_evicts_nobody() {
    let mut engine = engine(10);
    for second in 0..600 {
        for n in 0..3 {
            normal(&mut engine, second, user(n));
        }
    }
    let resume = 600 + 2 * IDLE_S;
    for second in resume..resume + 120 {
        // The Users come back one after another over two minutes.
        for n in 0..3 {
            if second >= resume + 40 * n as i64 {
                normal(&mut engine, second, user(n));
            }
        }
    }
    assert_eq!(engine.evicted_total(), 0);
    assert_eq!(engine.user_count(), 3);
}

/// The lock-out does not survive a restart: evicted Users are not in a snapshot, and a snapshot taken while the
/// made-up Users still sat in the table lets them go once they have been idle long enough.
#[test]
fn evicted_users_stay_out_after_a_restart() {
    let mut engine = engine(20);
    let keeper = user(0);
    for n in 0..19 {
        send(&mut engine, 0, made_up(n), EventKind::Request, 1);
    }
    for second in 0..60 {
        normal(&mut engine, second, keeper);
    }
    let bytes = engine.snapshot().unwrap();
    let mut engine =
        Engine::restore(&bytes, engine.config().clone(), ChangeRegister::default()).unwrap();
    assert_eq!(engine.user_count(), 20, "not yet idle long enough");
    for second in 60..IDLE_S + 60 {
        normal(&mut engine, second, keeper);
    }
    assert_eq!(engine.user_count(), 1);
    let bytes = engine.snapshot().unwrap();
    let mut engine =
        Engine::restore(&bytes, engine.config().clone(), ChangeRegister::default()).unwrap();
    assert_eq!(engine.user_count(), 1, "evicted Users are not restored");
    assert_eq!(
        engine.users_seen(),
        20,
        "the report still counts them as seen"
    );
    assert_eq!(engine.evicted_total(), 19);
    assert!(engine.evicted(made_up(3)).is_some());
    assert_places_consistent(&engine);
    send(&mut engine, IDLE_S + 60, user(1), EventKind::Request, 5);
    assert_eq!(engine.user_count(), 2);
}

#[test]
fn the_evicted_record_is_bounded() {
    let mut record = EvictedUsers::default();
    let at = Evicted {
        last_event_ms: 0,
        evicted_ms: 1,
    };
    for n in 0..1_000 {
        record.record(made_up(n % 300), at, 100);
        if n % 7 == 0 {
            record.returned(made_up(n % 300));
        }
    }
    assert_eq!(record.total(), 1_000);
    assert!(record.by_user.len() <= 100);
    assert!(record.order.len() <= 200);
    assert!(
        record.get(made_up(999 % 300)).is_some(),
        "the newest is kept"
    );
    assert_eq!(record.entries().len(), record.by_user.len());
}

#[test]
fn zero_never_evicts() {
    let mut engine = Engine::new(
        EngineConfig {
            evict_idle_after_s: 0,
            ..EngineConfig::default()
        },
        ChangeRegister::default(),
    );
    send(&mut engine, 0, made_up(1), EventKind::Request, 1);
    for second in 0..2 * IDLE_S {
        normal(&mut engine, second, user(0));
    }
    assert_eq!(engine.user_count(), 2);
}

/// Held lines name Users by ID, not by place: Users may leave the table while a line is held, and the line still
/// lands on its own User when it is released.
#[test]
fn eviction_while_a_line_is_held_loses_none() {
    let mut engine = engine(10);
    let keeper = user(0);
    send(&mut engine, 0, made_up(1), EventKind::Request, 1);
    for second in 0..IDLE_S / 2 {
        normal(&mut engine, second, keeper);
    }
    let ahead = Event::new(T0 + 4 * 3_600_000, keeper, EventKind::Request, 5);
    assert!(matches!(engine.ingest(&ahead), Ok(Ingested::Held(_))));
    let events = engine.stats().events;
    let later = T0 / 1000 + 10 * IDLE_S;
    engine.evict_idle(later, 64);
    assert!(
        engine.user_key(made_up(1)).is_none(),
        "the made-up User goes"
    );
    assert_places_consistent(&engine);
    // Event time moves on without the held line: its wait ends and it is counted late on the keeper.
    for second in IDLE_S / 2..IDLE_S / 2 + 120 {
        normal(&mut engine, second, keeper);
    }
    assert_eq!(engine.held_lines(), 0);
    assert_eq!(engine.stats().late, 1);
    assert!(engine.stats().events > events);
    assert_places_consistent(&engine);
}
