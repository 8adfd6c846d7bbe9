//! Planning in SQL, on the staging tables (each child's classroom and grade, and the placement
//! problems, were settled while staging, see `place`): match staged children to existing records
//! (current by Clever id, archived for carry-over, manual for linking). Reads the roster,
//! writes only staging tables and staged problems.
use sqlx::PgConnection;

use super::SyncError;
use super::apply_children::{LIVE_RECORD, LiveDiff, live_diff};
use super::model::code;
use super::stage::StagedTotals;

/// Staged children were written with the current record of their Clever id as read before
/// staging (`stage::live_children`): a prefilled match whose record no longer is that (archived by
/// the rollover or the product, removed, relinked) is undone here, inside the transaction (when
/// not every staged child was prefilled; otherwise [`LiveDiff`] counts them first, and this runs
/// only when it found some).
fn check_live() -> String {
    format!(
        "UPDATE stg_children s SET child_id = NULL, match_kind = NULL
         WHERE s.match_kind = 'live' AND NOT EXISTS (SELECT 1 FROM children t WHERE {LIVE_RECORD})"
    )
}

/// Whether [`MATCH_LIVE`] can match anything: some staged child holds no (still valid) prefilled
/// match (`undone`: prefilled matches [`check_live`] undid).
pub fn match_live_needed(children: u64, prefilled: u64, undone: u64) -> bool {
    prefilled.saturating_sub(undone) < children
}

/// The staged children without a (still valid) prefilled match, matched by Clever id to the
/// connection's current records: normally none.
const MATCH_LIVE: &str = "
UPDATE stg_children s SET child_id = c.id, match_kind = 'live'
FROM children c
WHERE s.match_kind IS NULL
  AND c.connection = $1 AND c.clever_id = s.clever_id AND c.archived_school_year IS NULL";

/// One matching pass: staged children still unmatched, against candidate records by one key.
/// Only the candidates of the most recent archived school year count (for manual records, which
/// have none, all do): a child archived in two years matches its newer record. A staged child
/// with exactly one such candidate that no other staged child also matches is matched (`kind`);
/// otherwise it is marked `<kind>-ambiguous` and becomes a new child. A record an admin unlinked
/// from a Clever id (`roster_links`) is never matched to it again.
fn match_pass(kind: PassKind, candidates: &str, key: &str) -> String {
    let kind = kind.as_str();
    format!(
        "WITH all_cand AS (
            SELECT s.clever_id AS sid, c.id AS cid,
                   rank() OVER (PARTITION BY s.clever_id ORDER BY c.archived_school_year DESC NULLS LAST) AS newest
            FROM stg_children s
            JOIN children c ON c.connection = $1 AND ({candidates}) AND ({key})
            WHERE s.match_kind IS NULL
              AND NOT EXISTS (SELECT 1 FROM stg_children x WHERE x.child_id = c.id)
              AND NOT EXISTS (SELECT 1 FROM roster_links l WHERE l.connection = $1
                  AND l.record_kind = 'children' AND l.clever_id = s.clever_id AND l.target_id = c.id
                  AND l.unlinked_at IS NOT NULL)
        ), cand AS (
            SELECT sid, cid FROM all_cand WHERE newest = 1
        ), {UNIQUE_BOTH_WAYS}
        UPDATE stg_children s
        SET child_id = d.cid, match_kind = CASE WHEN d.cid IS NULL THEN '{kind}-ambiguous' ELSE '{kind}' END
        FROM decided d WHERE d.sid = s.clever_id"
    )
}

/// The tail of a matching pass: from `cand(sid, cid)` (roster record, candidate), `decided(sid,
/// cid)` keeps a pair only when it is unique both ways (one candidate for the record, one record
/// for the candidate); otherwise `cid` is NULL: ambiguous, reported, never guessed.
const UNIQUE_BOTH_WAYS: &str = "per_s AS (
            SELECT sid, min(cid) AS cid, count(*) AS n FROM cand GROUP BY sid
        ), per_c AS (
            SELECT cid, count(*) AS n FROM cand GROUP BY cid
        ), decided AS (
            SELECT p.sid, CASE WHEN p.n = 1 AND q.n = 1 THEN p.cid END AS cid
            FROM per_s p JOIN per_c q ON q.cid = p.cid
        )";

/// Educators new to the roster (no record with their Clever id) matched to the product's own
/// educators (`source = 'manual'`, no Clever id) by `key`; unique both ways, else ambiguous.
fn educator_pass(kind: &str, key: &str) -> String {
    format!(
        "WITH cand AS (
            SELECT s.clever_id AS sid, c.id AS cid
            FROM stg_educators s
            JOIN educators c ON c.connection = $1 AND c.clever_id IS NULL AND c.source = 'manual' AND ({key})
            WHERE s.match_kind IS NULL
              AND NOT EXISTS (SELECT 1 FROM educators e WHERE e.connection = $1 AND e.clever_id = s.clever_id)
              AND NOT EXISTS (SELECT 1 FROM stg_educators x WHERE x.match_id = c.id)
              AND NOT EXISTS (SELECT 1 FROM roster_links l WHERE l.connection = $1
                  AND l.record_kind = 'educators' AND l.clever_id = s.clever_id AND l.target_id = c.id
                  AND l.unlinked_at IS NOT NULL)
        ), {UNIQUE_BOTH_WAYS}
        UPDATE stg_educators s
        SET match_id = d.cid, match_kind = CASE WHEN d.cid IS NULL THEN 'ambiguous' ELSE '{kind}' END
        FROM decided d WHERE d.sid = s.clever_id"
    )
}

const EDUCATOR_BY_EMAIL: &str = "s.email IS NOT NULL AND btrim(s.email) <> '' AND lower(btrim(c.email)) = lower(btrim(s.email))";
const EDUCATOR_BY_SIS_ID: &str = "s.sis_id IS NOT NULL AND c.sis_id = s.sis_id";

const EDUCATOR_PROBLEMS: &str = "
INSERT INTO stg_problems (record_kind, clever_id, code, message)
SELECT 'educators', clever_id, 'EducatorMatchAmbiguous',
       'several educators already in the product (or several roster teachers) match by email or SIS id; '
       || 'created as a new educator: link the right one manually'
FROM stg_educators WHERE match_kind = 'ambiguous' ORDER BY clever_id";

/// Matches staged educators to the product's own educators: by email, then by SIS id. Never
/// guesses: an ambiguous match is created new and reported.
pub async fn match_educators(conn: &mut PgConnection, connection: &str) -> Result<(), SyncError> {
    sqlx::raw_sql("ALTER TABLE stg_educators ADD COLUMN IF NOT EXISTS match_id bigint, ADD COLUMN IF NOT EXISTS match_kind text")
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("preparing educator matching"))?;
    for (kind, key) in [("email", EDUCATOR_BY_EMAIL), ("sis", EDUCATOR_BY_SIS_ID)] {
        sqlx::query(&educator_pass(kind, key))
            .bind(connection)
            .execute(&mut *conn)
            .await
            .map_err(SyncError::db("matching educators to existing ones"))?;
    }
    sqlx::raw_sql(EDUCATOR_PROBLEMS)
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("recording educator matching problems"))?;
    Ok(())
}

const ARCHIVED: &str = "c.archived_school_year IS NOT NULL";
const MANUAL: &str =
    "c.source = 'manual' AND c.clever_id IS NULL AND c.archived_school_year IS NULL";
const BY_CLEVER_ID: &str = "c.clever_id = s.clever_id";
const BY_SIS_ID: &str = "s.sis_id IS NOT NULL AND c.sis_id = s.sis_id";
const BY_NAME_DOB: &str = "s.dob IS NOT NULL AND c.dob = s.dob \
     AND rs_name_key(c.first_name, c.last_name) = rs_name_key(s.first_name, s.last_name)";
const BY_NAME_DOB_SCHOOL: &str = "s.dob IS NOT NULL AND c.dob = s.dob \
     AND c.school_clever_id = s.school_clever_id \
     AND rs_name_key(c.first_name, c.last_name) = rs_name_key(s.first_name, s.last_name)";

const MATCH_PROBLEMS: &str = "
INSERT INTO stg_problems (record_kind, clever_id, code, message)
SELECT 'children', clever_id, 'CarryoverAmbiguous',
       'several archived children (or several new children) match by the same key; created as a new child, '
       || 'match it manually if it is a returning child'
FROM stg_children WHERE match_kind = 'carry-ambiguous' ORDER BY clever_id;
INSERT INTO stg_problems (record_kind, clever_id, code, message)
SELECT 'children', clever_id, 'ManualMatchAmbiguous',
       'several manually entered children (or several roster children) match by the same key; created as '
       || 'a new roster child: match or merge it manually'
FROM stg_children WHERE match_kind = 'manual-ambiguous' ORDER BY clever_id";

/// Statistics of the staged children's columns that apply joins and filters on.
pub const ANALYZE_STAGED_CHILDREN: &str =
    "ANALYZE stg_children (clever_id, child_id, match_kind, classroom_clever_id)";

/// [`ANALYZE_STAGED_CHILDREN`] when every staged child was matched by its Clever id: the unique
/// Clever ids (a third of its cost) are left out, no pass joins on them.
pub const ANALYZE_MATCHED_CHILDREN: &str =
    "ANALYZE stg_children (child_id, match_kind, classroom_clever_id)";

/// What planning found that apply needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Staged children matched to their current record by Clever id.
    pub live: u64,
    /// Staged children the carry-over passes decided (matched to an archived child, or found
    /// ambiguous): 0 when no archived child could match, and apply skips carrying over.
    pub carry: u64,
    /// Staged children the manual-record passes decided (linked or ambiguous): 0 when the
    /// connection has no child entered in the product, and apply skips linking.
    pub manual: u64,
    /// When every staged child was written with its record and every such match held: what apply
    /// would change on those children and their enrollments (`apply_children::child_statements`).
    pub diff: Option<LiveDiff>,
}

impl Resolved {
    /// Whether any staged child holds an existing record (`child_id`): what apply's statements on
    /// matched children (updates, their enrollments) need. None on a first sync.
    pub fn any_matched(&self) -> bool {
        self.live + self.carry + self.manual > 0
    }

    /// Whether every one of the `staged` staged children was matched to its current record by
    /// Clever id (none carried over, linked or new).
    pub fn all_live(&self, staged: u64) -> bool {
        self.live >= staged && self.carry + self.manual == 0
    }
}

/// What a matching pass does with the staged child it matches: carries an archived child over, or
/// links a child entered in the product (`match_kind`, and `<kind>-ambiguous` when undecidable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassKind {
    Carry,
    Manual,
}

impl PassKind {
    fn as_str(self) -> &'static str {
        match self {
            PassKind::Carry => "carry",
            PassKind::Manual => "manual",
        }
    }
}

/// Which kinds of candidate records the connection holds, read in the run's transaction: a
/// matching pass without candidates can match nothing and is skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Archived children (carry-over).
    pub archived: bool,
    /// Children entered in the product, not linked to the roster (linking).
    pub manual: bool,
}

/// Both kinds' existence, each one index probe (`children_candidates_name_key` holds exactly
/// the candidates).
const CANDIDATES: &str = "
SELECT EXISTS (SELECT 1 FROM children c WHERE c.connection = $1 AND c.archived_school_year IS NOT NULL),
       EXISTS (SELECT 1 FROM children c WHERE c.connection = $1 AND c.clever_id IS NULL
               AND c.source = 'manual' AND c.archived_school_year IS NULL)";

/// The matching passes to run, in order: carry-over (archived children, when `auto_carryover`),
/// then linking (manual children), each only when the connection has such candidates.
pub fn matching_passes(
    auto_carryover: bool,
    candidates: Candidates,
) -> Vec<(PassKind, &'static str, &'static str)> {
    let mut passes = Vec::new();
    if auto_carryover && candidates.archived {
        passes.extend([
            (PassKind::Carry, ARCHIVED, BY_CLEVER_ID),
            (PassKind::Carry, ARCHIVED, BY_SIS_ID),
            (PassKind::Carry, ARCHIVED, BY_NAME_DOB),
        ]);
    }
    if candidates.manual {
        passes.extend([
            (PassKind::Manual, MANUAL, BY_SIS_ID),
            (PassKind::Manual, MANUAL, BY_NAME_DOB_SCHOOL),
        ]);
    }
    passes
}

/// Which statistics of the staged children to refresh once they are matched (`None`: none), for
/// the joins of apply. `analyzed_early`: analyzed before matching, when most staged children were
/// written with their record; those figures stand unless many children were left to the passes.
/// `passes_ran`: matching passes ran (the connection had candidates). When nothing was matched
/// and no pass ran (a first sync), apply only inserts: no statement joins on the staged ids.
pub fn analyze_after_matching(
    children: u64,
    live: u64,
    analyzed_early: bool,
    passes_ran: bool,
) -> Option<&'static str> {
    let unmatched = children.saturating_sub(live);
    if children == 0
        || (live == 0 && !passes_ran)
        || (analyzed_early && unmatched.saturating_mul(10) <= children)
    {
        None
    } else if unmatched == 0 {
        Some(ANALYZE_MATCHED_CHILDREN)
    } else {
        Some(ANALYZE_STAGED_CHILDREN)
    }
}

async fn analyze(conn: &mut PgConnection, statement: &str) -> Result<(), SyncError> {
    sqlx::query(statement)
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("analyzing staged children"))?;
    Ok(())
}

/// Runs the planning steps on what was staged (`staged`). `auto_carryover` enables the
/// archived-children passes.
pub async fn resolve(
    conn: &mut PgConnection,
    connection: &str,
    auto_carryover: bool,
    staged: &StagedTotals,
) -> Result<Resolved, SyncError> {
    // Staged children written with their record ([`CHECK_LIVE`]) are analyzed before the check:
    // without figures the planner takes `match_kind = 'live'` for a few rows and probes the
    // roster once per staged child (at 100k students, 34 ms for the check instead of 21, and
    // 56 ms instead of 3 for apply's reactivation that finds none).
    let analyzed_early = staged.prefilled > 0;
    let mut undone = 0;
    let mut diff = None;
    if analyzed_early {
        analyze(conn, ANALYZE_MATCHED_CHILDREN).await?;
        // Every staged child prefilled (a resync): one read checks the matches and counts what
        // apply would change; the check rewrites staged rows only when some match broke.
        if staged.prefilled >= staged.children {
            diff = Some(live_diff(conn, connection).await?).filter(|d| d.broken == 0);
        }
        if diff.is_none() {
            undone = sqlx::query(&check_live())
                .bind(connection)
                .execute(&mut *conn)
                .await
                .map_err(SyncError::db("checking children matched by Clever id"))?
                .rows_affected();
        }
    }
    let matched = if match_live_needed(staged.children, staged.prefilled, undone) {
        sqlx::query(MATCH_LIVE)
            .bind(connection)
            .execute(&mut *conn)
            .await
            .map_err(SyncError::db("matching children by Clever id"))?
            .rows_affected()
    } else {
        0
    };
    let live = staged.prefilled.saturating_sub(undone) + matched;
    let mut resolved = Resolved {
        live,
        diff,
        ..Resolved::default()
    };
    let passes = if live >= staged.children {
        // Every staged child has its current record: nothing is left for the passes below.
        Vec::new()
    } else {
        let (archived, manual): (bool, bool) = sqlx::query_as(CANDIDATES)
            .bind(connection)
            .fetch_one(&mut *conn)
            .await
            .map_err(SyncError::db("looking for archived and manual children"))?;
        matching_passes(auto_carryover, Candidates { archived, manual })
    };
    let passes_ran = !passes.is_empty();
    if passes_ran {
        // The matching passes skip candidates a staged child already holds, probing staged
        // children by child_id from the roster side: with this index a plan that misjudges the
        // roster table (a first sync into a fresh database) cannot turn that probe into a rescan
        // of the whole staging table per candidate (the removal statements once did: 155 s at
        // 100k).
        sqlx::query("CREATE INDEX ON stg_children (child_id)")
            .execute(&mut *conn)
            .await
            .map_err(SyncError::db("indexing staged children"))?;
    }
    for (kind, candidates, key) in passes {
        let decided = sqlx::query(&match_pass(kind, candidates, key))
            .bind(connection)
            .execute(&mut *conn)
            .await
            .map_err(SyncError::db(
                "matching children to archived or manual records",
            ))?
            .rows_affected();
        match kind {
            PassKind::Carry => resolved.carry += decided,
            PassKind::Manual => resolved.manual += decided,
        }
    }
    match_educators(conn, connection).await?;
    if passes_ran {
        sqlx::raw_sql(MATCH_PROBLEMS)
            .execute(&mut *conn)
            .await
            .map_err(SyncError::db("recording matching problems"))?;
    }
    // Planning filled child_id and match_kind: refresh the planner's view of the columns apply
    // joins and filters on (the others, names and demographics, cost most of a full ANALYZE).
    // It was not what kept the 1M stale-children count from a nested loop: the removal
    // statements run without nested loops, `apply::set_nestloop`.
    if let Some(statement) =
        analyze_after_matching(staged.children, live, analyzed_early, passes_ran)
    {
        analyze(conn, statement).await?;
    }
    Ok(resolved)
}

/// Records one problem for the whole run when new children get no journey because the policy's
/// journey is not licensed.
pub async fn journey_problem(conn: &mut PgConnection, journey: &str) -> Result<(), SyncError> {
    sqlx::query(
        "INSERT INTO stg_problems (record_kind, clever_id, code, message)
         SELECT 'children', NULL, $1, count(*) || ' new children got no journey: newChildJourney '
                || quote_literal($2) || ' is not a licensed product (the JourneyPolicy''s licensedProducts '
                || 'and the operator''s licenses)'
         FROM stg_children WHERE match_kind IS DISTINCT FROM 'live' AND match_kind IS DISTINCT FROM 'carry'
           AND match_kind IS DISTINCT FROM 'manual'
         HAVING count(*) > 0",
    )
    .bind(code::JOURNEY_NOT_LICENSED)
    .bind(journey)
    .execute(&mut *conn)
    .await
    .map_err(SyncError::db("recording the journey problem"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_children_are_analyzed_once_and_only_when_the_figures_changed() {
        let (m, s) = (
            Some(ANALYZE_MATCHED_CHILDREN),
            Some(ANALYZE_STAGED_CHILDREN),
        );
        for (children, live, early, passes, want, why) in [
            (0, 0, false, false, None, "nothing staged"),
            (
                1000,
                0,
                false,
                false,
                None,
                "a first sync: nothing to match, no pass ran, apply only inserts",
            ),
            (
                1000,
                0,
                false,
                true,
                s,
                "a first sync beside archived or manual children: the passes ran",
            ),
            (
                1000,
                1000,
                false,
                false,
                m,
                "all matched, none written with its record (a raced read)",
            ),
            (
                1000,
                1000,
                true,
                false,
                None,
                "a resync: analyzed before matching, nothing changed",
            ),
            (
                1000,
                950,
                true,
                true,
                None,
                "a few new children: the early figures stand",
            ),
            (1000, 900, true, true, None, "a tenth new: still"),
            (1000, 899, true, true, s, "more than a tenth new: refreshed"),
            (
                1000,
                899,
                true,
                false,
                s,
                "more than a tenth new, no candidates: refreshed",
            ),
            (1000, 10, true, true, s, "most new"),
        ] {
            assert_eq!(
                analyze_after_matching(children, live, early, passes),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn matching_by_clever_id_runs_only_for_children_without_their_record() {
        for (children, prefilled, undone, want, why) in [
            (0, 0, 0, false, "nothing staged"),
            (1000, 0, 0, true, "a first sync (normally matches none)"),
            (1000, 1000, 0, false, "a resync: every child has its record"),
            (1000, 1000, 1, true, "one match undone: matched again"),
            (1000, 990, 0, true, "new children"),
        ] {
            assert_eq!(
                match_live_needed(children, prefilled, undone),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn a_matching_pass_runs_only_where_a_candidate_can_be() {
        let kinds = |carryover, archived, manual| {
            matching_passes(carryover, Candidates { archived, manual })
                .into_iter()
                .map(|(kind, _, key)| (kind, key))
                .collect::<Vec<_>>()
        };
        let carry = [
            (PassKind::Carry, BY_CLEVER_ID),
            (PassKind::Carry, BY_SIS_ID),
            (PassKind::Carry, BY_NAME_DOB),
        ];
        let manual = [
            (PassKind::Manual, BY_SIS_ID),
            (PassKind::Manual, BY_NAME_DOB_SCHOOL),
        ];
        for (carryover, archived, manual_children, want, why) in [
            (
                true,
                false,
                false,
                vec![],
                "a first sync: no candidates at all",
            ),
            (false, false, false, vec![], "no candidates, carry-over off"),
            (true, true, false, carry.to_vec(), "archived children only"),
            (
                false,
                true,
                false,
                vec![],
                "archived children, carry-over off: never carried",
            ),
            (true, false, true, manual.to_vec(), "manual children only"),
            (
                false,
                true,
                true,
                manual.to_vec(),
                "carry-over off: manual records still linked",
            ),
            (
                true,
                true,
                true,
                [carry.as_slice(), manual.as_slice()].concat(),
                "both, carry-over first (an archived child wins over a manual one)",
            ),
        ] {
            assert_eq!(kinds(carryover, archived, manual_children), want, "{why}");
        }
    }
}
