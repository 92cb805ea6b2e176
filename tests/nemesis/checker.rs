//! The checker: after a fault, every binding revocation refused and every token that must
//! stay accepted accepted, by every store — the running mirrors and stores started after
//! the fault — within the recovery window; and what the load saw during the faults.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_jwt_revoke::store::{RevocationQuery, RevocationStore};

use super::model::{Bound, Scope, Verdict, verdict};

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A binding revocation accepted by a store after the recovery window.
    Accepted,
    /// A mirror accepted what it had refused before (during a fault or not).
    MirrorForgot,
    /// A token that must be accepted (never revoked, or unrevoked) refused.
    WronglyRefused,
    /// A store still failing at the end of the recovery (a 503 that does not end).
    NeverAnswered,
}

/// One violation of the invariant, with what reproduces it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub kind: Kind,
    /// The round (`None`: the end of the run).
    pub round: Option<usize>,
    pub fault: String,
    pub scope: Option<Scope>,
    pub store: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.round {
            Some(round) => write!(f, "round {round}")?,
            None => f.write_str("end")?,
        }
        write!(f, ", fault {}: {:?}", self.fault, self.kind)?;
        if let Some(scope) = self.scope {
            write!(f, " scope={scope:?}")?;
        }
        write!(f, " store={} ({})", self.store, self.detail)
    }
}

/// The fault a check follows: its round (`None`: the end of the run), its name, when
/// it was injected.
pub struct After<'a> {
    pub round: Option<usize>,
    pub fault: &'a str,
    pub at: Instant,
}

/// A store the checker asks, by name.
pub type Named = (String, Arc<dyn RevocationStore>);

/// What one recovery check found.
pub struct Recovery {
    /// How long until every store agreed with the model, if they did before the deadline.
    pub converged: Option<Duration>,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Wrong {
    Accepted(usize),
    Refused(usize),
    Unanswered(String),
}

/// Asks every store about every target until all agree with the model, for up to
/// `deadline`. What is still wrong at `window` is a violation (said "late" if it is right
/// by the deadline, "lost" if not); a store that still cannot answer at the deadline is
/// one too.
pub async fn recover(
    stores: &[Named],
    bound: &[Bound],
    accepted: &[(RevocationQuery, String)],
    (window, deadline): (Duration, Duration),
    after: After<'_>,
) -> Recovery {
    let After {
        round,
        fault,
        at: fault_at,
    } = after;
    let started = Instant::now();
    let bound = Arc::new(bound.to_vec());
    let accepted = Arc::new(accepted.to_vec());
    let mut at_window: Option<Vec<(usize, Wrong)>> = None;
    let mut last;
    let converged = loop {
        last = pass(stores, &bound, &accepted).await;
        let elapsed = started.elapsed();
        if last.is_empty() {
            break Some(elapsed);
        }
        if elapsed >= window && at_window.is_none() {
            at_window = Some(last.clone());
        }
        if elapsed >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut violations = Vec::new();
    let still = |wrong: &(usize, Wrong)| {
        if last.contains(wrong) {
            "lost: still so at the deadline".to_owned()
        } else {
            format!(
                "late: right {:?} after Redis answered",
                converged.unwrap_or(deadline)
            )
        }
    };
    for wrong in at_window.iter().flatten() {
        let (store, what) = wrong;
        let store = stores[*store].0.clone();
        let violation = match what {
            Wrong::Accepted(n) => {
                let entry = &bound[*n];
                Violation {
                    kind: Kind::Accepted,
                    round,
                    fault: fault.to_owned(),
                    scope: Some(entry.scope),
                    store,
                    detail: format!(
                        "{}; made in round {} ({:?}, {:?}) through {}, {}",
                        still(wrong),
                        entry.round,
                        entry.origin,
                        entry.binding,
                        entry.through,
                        match fault_at.checked_duration_since(entry.made) {
                            Some(before) => format!("{before:?} before the fault"),
                            None => format!("{:?} after the fault", entry.made - fault_at),
                        },
                    ),
                }
            }
            Wrong::Refused(n) => Violation {
                kind: Kind::WronglyRefused,
                round,
                fault: fault.to_owned(),
                scope: None,
                store,
                detail: format!("{}; {}", still(wrong), accepted[*n].1),
            },
            Wrong::Unanswered(_) => continue,
        };
        violations.push(violation);
    }
    for (store, what) in &last {
        if let Wrong::Unanswered(error) = what {
            violations.push(Violation {
                kind: Kind::NeverAnswered,
                round,
                fault: fault.to_owned(),
                scope: None,
                store: stores[*store].0.clone(),
                detail: format!("{deadline:?} after Redis answered: {error}"),
            });
        }
    }
    Recovery {
        converged,
        violations,
    }
}

/// One pass: every store asked about every target (a store that fails is asked no more
/// this pass).
async fn pass(
    stores: &[Named],
    bound: &Arc<Vec<Bound>>,
    accepted: &Arc<Vec<(RevocationQuery, String)>>,
) -> Vec<(usize, Wrong)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (_, store)) in stores.iter().enumerate() {
        let (store, bound, accepted) = (Arc::clone(store), Arc::clone(bound), Arc::clone(accepted));
        tasks.spawn(async move {
            let mut wrong = Vec::new();
            let revoked = bound.iter().map(|entry| (&entry.query, true));
            let live = accepted.iter().map(|(query, _)| (query, false));
            let (mut n_revoked, mut n_live) = (0, 0);
            for (query, must_refuse) in revoked.chain(live) {
                match verdict(&*store, query).await {
                    Verdict::Failed(error) => {
                        wrong.push((index, Wrong::Unanswered(error)));
                        break;
                    }
                    Verdict::Accepted if must_refuse => wrong.push((index, Wrong::Accepted(n_revoked))),
                    Verdict::Refused if !must_refuse => wrong.push((index, Wrong::Refused(n_live))),
                    _ => {}
                }
                if must_refuse {
                    n_revoked += 1;
                } else {
                    n_live += 1;
                }
            }
            wrong
        });
    }
    let mut all = Vec::new();
    while let Some(found) = tasks.join_next().await {
        all.extend(found.expect("a check task"));
    }
    all.sort_by_key(|(store, _)| *store);
    all
}

/// The violations in a few lines: one per round, fault, kind, store and outcome, with
/// how many of each scope, and one example. With `TOWER_JWT_REVOKE_NEMESIS_VERBOSE=1`,
/// every violation on a line of its own too.
pub fn grouped(violations: &[Violation]) -> Vec<String> {
    if std::env::var("TOWER_JWT_REVOKE_NEMESIS_VERBOSE").is_ok_and(|value| value == "1") {
        for violation in violations {
            eprintln!("  {violation}");
        }
    }
    let mut groups: Vec<(String, Vec<&Violation>)> = Vec::new();
    for violation in violations {
        let outcome = violation.detail.split(';').next().unwrap_or_default();
        let key = format!(
            "{}, fault {}: {:?} by {} ({outcome})",
            violation
                .round
                .map_or("end".to_owned(), |round| format!("round {round}")),
            violation.fault,
            violation.kind,
            violation.store,
        );
        match groups.iter_mut().find(|(known, _)| *known == key) {
            Some((_, members)) => members.push(violation),
            None => groups.push((key, vec![violation])),
        }
    }
    groups
        .into_iter()
        .map(|(key, members)| {
            let mut scopes = std::collections::BTreeMap::new();
            for member in &members {
                *scopes.entry(member.scope).or_insert(0) += 1;
            }
            let scopes: Vec<String> = scopes
                .into_iter()
                .map(|(scope, n)| match scope {
                    Some(scope) => format!("{scope:?} {n}"),
                    None => format!("{n}"),
                })
                .collect();
            let acknowledged = members
                .iter()
                .filter(|member| member.detail.contains("Acknowledged"))
                .count();
            let acknowledged = match acknowledged {
                0 => String::new(),
                n => format!("; {n} acknowledged"),
            };
            format!(
                "{key}: {} [{}{acknowledged}], e.g. {}",
                members.len(),
                scopes.join(", "),
                members[0]
            )
        })
        .collect()
}
