//! Staging: TEMP tables on the sync's own connection, bulk-loaded with `COPY ... FROM STDIN` (text
//! format) in batches while Clever pages stream in. Nothing here touches the roster tables.
use foldhash::{HashMap, HashMapExt as _};

use futures::TryStreamExt;
use sqlx::PgConnection;

use super::SyncError;
use super::model::{Problem, StagedChild, StagedClassroom, StagedEducator, StagedSchool, code};
use super::place::{PlacementProblems, Sections, id_key};

/// Flush a table's buffer into Postgres once it holds this many bytes.
const FLUSH_BYTES: usize = 256 << 10;

const CREATE: &str = "
DROP TABLE IF EXISTS stg_schools, stg_classrooms, stg_children, stg_educators, stg_problems;
CREATE TEMP TABLE stg_schools (clever_id text, name text, sis_id text, low_grade text, high_grade text);
CREATE TEMP TABLE stg_classrooms (clever_id text, school_clever_id text, name text, grade text, subject text,
    is_homeroom boolean, teacher_clever_id text);
CREATE TEMP TABLE stg_children (clever_id text, sis_id text, first_name text, last_name text, grade text,
    dob_grade text, primary_school text, demo_shared boolean, dob date, gender text, ell_status text,
    hispanic_ethnicity text, race text, home_language text, iep_status text, frl_status text,
    -- The placement, decided while staging (`place`): NULL for a child in no kept section.
    classroom_clever_id text, school_clever_id text, final_grade text, n_sections integer,
    -- Filled by planning:
    child_id bigint, match_kind text);
CREATE TEMP TABLE stg_educators (clever_id text, school_clever_id text, sis_id text, first_name text,
    last_name text, email text, title text);
CREATE TEMP TABLE stg_problems (id bigserial, record_kind text, clever_id text, code text, message text);
-- Built empty and kept up while loading (by the writer, beside the stager): the statements that
-- probe a staging table by Clever id from the roster side (the stale-record counts and removals)
-- need them whenever the planner misjudges the roster table. No ANALYZE: the planner sizes a
-- never-analyzed table from its pages, which is all the hash joins on staging need.
-- The staged children are analyzed once matched (`resolve`), for apply's joins: what those need
-- (a column's distinct values and the share of each match kind) a 3,000-row sample gives, in a
-- fifth of the default 30,000-row sample's time (6 against 30-40 ms at 19k children).
ALTER TABLE stg_children ALTER COLUMN clever_id SET STATISTICS 10,
    ALTER COLUMN child_id SET STATISTICS 10, ALTER COLUMN match_kind SET STATISTICS 10,
    ALTER COLUMN classroom_clever_id SET STATISTICS 10;
CREATE UNIQUE INDEX ON stg_schools (clever_id);
CREATE UNIQUE INDEX ON stg_classrooms (clever_id);
CREATE UNIQUE INDEX ON stg_children (clever_id);
CREATE UNIQUE INDEX ON stg_educators (clever_id);
";

/// The connection's current children (a Clever id, not archived) by [`id_key`] of their Clever id:
/// read under the run's lock before staging, so that each staged child is written with the record
/// it matches (`child_id`, `match_kind = 'live'`) instead of a rewrite of every staged row in the
/// transaction. Only a hint: `resolve` checks every prefilled match against the roster inside the
/// transaction (a record the product archived or removed meanwhile is matched again from scratch).
pub async fn live_children(
    conn: &mut PgConnection,
    connection: &str,
) -> Result<HashMap<u128, i64>, SyncError> {
    let mut rows = sqlx::query_as::<_, (String, i64)>(
        "SELECT clever_id, id FROM children
         WHERE connection = $1 AND clever_id IS NOT NULL AND archived_school_year IS NULL",
    )
    .bind(connection)
    .fetch(&mut *conn);
    let mut live = HashMap::new();
    while let Some((clever_id, id)) = rows
        .try_next()
        .await
        .map_err(SyncError::db("reading the connection's children"))?
    {
        live.insert(id_key(&clever_id), id);
    }
    Ok(live)
}

/// Creates (or recreates) the empty staging tables on `conn`.
pub async fn create_tables(conn: &mut PgConnection) -> Result<(), SyncError> {
    sqlx::raw_sql(CREATE)
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("creating the staging tables"))?;
    Ok(())
}

/// Batches of COPY rows waiting for the writer, besides the one it is writing: the stager fills
/// the next batch while Postgres loads the current one.
const WRITE_AHEAD: usize = 2;

/// One batch of COPY rows (text format) for one staging table.
pub struct Batch {
    statement: &'static str,
    rows: Vec<u8>,
}

/// Reads the connection's current children ([`live_children`]) for the stager, then COPYs the
/// stager's batches into staging, one at a time, until the stager is done (its end of the channel
/// dropped). Returns the time spent in COPY round trips.
async fn write_batches(
    conn: &mut PgConnection,
    connection: &str,
    live: tokio::sync::oneshot::Sender<HashMap<u128, i64>>,
    mut batches: tokio::sync::mpsc::Receiver<Batch>,
) -> Result<std::time::Duration, SyncError> {
    // The stager waits for these only at its first child: schools and sections are fetched and
    // staged meanwhile.
    let _ = live.send(live_children(conn, connection).await?);
    let mut copy_time = std::time::Duration::ZERO;
    while let Some(batch) = batches.recv().await {
        let started = std::time::Instant::now();
        let mut copy = conn
            .copy_in_raw(batch.statement)
            .await
            .map_err(SyncError::db("starting a COPY into staging"))?;
        copy.send(batch.rows)
            .await
            .map_err(SyncError::db("sending rows to staging"))?;
        copy.finish()
            .await
            .map_err(SyncError::db("finishing a COPY into staging"))?;
        copy_time += started.elapsed();
    }
    Ok(copy_time)
}

/// Stages what `source` streams into the empty, indexed staging tables on `conn`. Formatting rows
/// and loading them overlap: the stager hands each full batch to a writer that COPYs it while the
/// next one fills ([`WRITE_AHEAD`]); the writer first reads the connection's current children
/// ([`live_children`]), which the stager needs from its first child on.
pub async fn stage_from(
    conn: &mut PgConnection,
    connection: &str,
    source: &impl super::engine::RosterSource,
    ctx: &super::engine::StageContext,
) -> Result<StagedTotals, SyncError> {
    let (sink, batches) = tokio::sync::mpsc::channel(WRITE_AHEAD);
    let (live_tx, live_rx) = tokio::sync::oneshot::channel();
    let stager = Stager::new(sink, Live::Pending(live_rx));
    // The stager is dropped when staging ends, however it ends: the writer then finishes the
    // batches it was given and stops.
    let staging = async move {
        let mut stager = stager;
        source.stage(ctx, &mut stager).await?;
        stager.finish().await
    };
    let writing = write_batches(&mut *conn, connection, live_tx, batches);
    let (staged, written) = tokio::join!(staging, writing);
    // A writer that failed stopped the stager too: its error is the cause.
    let copy_time = written?;
    let mut totals = staged?;
    totals.copy_time = copy_time;
    Ok(totals)
}

/// The connection's current children, as the stager sees them: still being read, or read.
enum Live {
    Pending(tokio::sync::oneshot::Receiver<HashMap<u128, i64>>),
    Ready(HashMap<u128, i64>),
}

impl Live {
    async fn get(&mut self) -> Result<&HashMap<u128, i64>, SyncError> {
        if let Live::Pending(rx) = self {
            let read = rx.await.map_err(|_| writer_stopped())?;
            *self = Live::Ready(read);
        }
        match self {
            Live::Ready(live) => Ok(live),
            Live::Pending(_) => Err(writer_stopped()),
        }
    }
}

/// The stager's error when the writer is gone (the writer's own error says why).
fn writer_stopped() -> SyncError {
    SyncError::SessionLost {
        detail: "the staging writer stopped".into(),
    }
}

/// One table's pending COPY rows.
struct CopyBuffer {
    statement: &'static str,
    buf: Vec<u8>,
    rows: u64,
}

impl CopyBuffer {
    fn new(statement: &'static str) -> Self {
        CopyBuffer {
            statement,
            buf: Vec::with_capacity(FLUSH_BYTES + 4096),
            rows: 0,
        }
    }

    /// Hands the pending rows to the writer (waiting while it is [`WRITE_AHEAD`] batches behind).
    async fn flush(&mut self, sink: &Sink) -> Result<(), SyncError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.buf, Vec::with_capacity(FLUSH_BYTES + 4096));
        sink.send(Batch {
            statement: self.statement,
            rows,
        })
        .await
        .map_err(|_| writer_stopped())
    }

    async fn maybe_flush(&mut self, sink: &Sink) -> Result<(), SyncError> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush(sink).await
        } else {
            Ok(())
        }
    }
}

type Sink = tokio::sync::mpsc::Sender<Batch>;

/// Writes one row in COPY text format.
struct Row<'a>(&'a mut Vec<u8>, bool);

impl<'a> Row<'a> {
    fn new(buf: &'a mut Vec<u8>) -> Self {
        Row(buf, true)
    }

    fn sep(&mut self) {
        if !self.1 {
            self.0.push(b'\t');
        }
        self.1 = false;
    }

    fn text(mut self, value: Option<&str>) -> Self {
        self.sep();
        match value {
            None => self.0.extend_from_slice(b"\\N"),
            Some(v) => escape_into(self.0, v),
        }
        self
    }

    fn bool(mut self, value: bool) -> Self {
        self.sep();
        self.0.push(if value { b't' } else { b'f' });
        self
    }

    fn end(self) {
        self.0.push(b'\n');
    }
}

/// Escapes a value for COPY text format: backslash, tab, newline and carriage return.
pub fn escape_into(out: &mut Vec<u8>, value: &str) {
    // Most values (ids, names, codes) hold none of these: copied whole.
    if !value
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0))
    {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            // NUL cannot be stored in Postgres text: drop it.
            0 => {}
            _ => out.push(b),
        }
    }
}

/// Ids already staged, per entity, by [`id_key`] (16 bytes an id, so a million children cost
/// ~30 MB).
#[derive(Default)]
struct SeenIds(foldhash::HashSet<u128>);

impl SeenIds {
    /// True the first time `id` is seen.
    fn first(&mut self, id: &str) -> bool {
        self.0.insert(id_key(id))
    }
}

/// Streams staged rows into the staging tables. A record whose Clever id was already staged (Clever
/// returned it twice) is skipped with a `DuplicateRecord` problem: the first one is kept.
///
/// Classrooms are staged before children: each child is placed in its classroom as its row is
/// written ([`Sections`]).
pub struct Stager {
    sink: Sink,
    seen: [SeenIds; 4],
    sections: Sections,
    /// The connection's current children ([`live_children`]).
    live: Live,
    prefilled: u64,
    placement: PlacementProblems,
    schools: CopyBuffer,
    classrooms: CopyBuffer,
    children: CopyBuffer,
    educators: CopyBuffer,
    problems: CopyBuffer,
}

/// Rows staged per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StagedTotals {
    pub schools: u64,
    pub classrooms: u64,
    pub children: u64,
    pub educators: u64,
    pub problems: u64,
    /// Staged children written with the record they match ([`live_children`]).
    pub prefilled: u64,
    /// Staged children placed in a classroom (an enrollment each).
    pub placed: u64,
    /// Time spent sending COPY batches into staging (overlapped with fetching otherwise).
    pub copy_time: std::time::Duration,
}

impl Stager {
    /// A stager handing its batches to `sink` ([`stage_from`]); `live` are the connection's
    /// current children ([`live_children`]).
    fn new(sink: Sink, live: Live) -> Self {
        Stager {
            sink,
            seen: Default::default(),
            sections: Sections::default(),
            live,
            prefilled: 0,
            placement: PlacementProblems::default(),
            schools: CopyBuffer::new(
                "COPY stg_schools (clever_id, name, sis_id, low_grade, high_grade) FROM STDIN",
            ),
            classrooms: CopyBuffer::new(
                "COPY stg_classrooms (clever_id, school_clever_id, name, grade, subject, is_homeroom, teacher_clever_id) FROM STDIN",
            ),
            children: CopyBuffer::new(
                "COPY stg_children (clever_id, sis_id, first_name, last_name, grade, dob_grade, primary_school, \
                 demo_shared, dob, gender, ell_status, hispanic_ethnicity, race, home_language, iep_status, frl_status, \
                 classroom_clever_id, school_clever_id, final_grade, n_sections, child_id, match_kind) FROM STDIN",
            ),
            educators: CopyBuffer::new(
                "COPY stg_educators (clever_id, school_clever_id, sis_id, first_name, last_name, email, title) FROM STDIN",
            ),
            problems: CopyBuffer::new(
                "COPY stg_problems (record_kind, clever_id, code, message) FROM STDIN",
            ),
        }
    }

    /// Whether the record is new; a repeat is recorded as a problem.
    async fn first(&mut self, entity: usize, kind: &str, id: &str) -> Result<bool, SyncError> {
        if self.seen[entity].first(id) {
            return Ok(true);
        }
        let problem = Problem {
            record_kind: kind.to_string(),
            clever_id: Some(id.to_string()),
            code: code::DUPLICATE_RECORD.to_string(),
            message: "Clever returned this id more than once; the first record was kept".into(),
        };
        self.problem(&problem).await?;
        Ok(false)
    }

    pub async fn school(&mut self, s: &StagedSchool) -> Result<(), SyncError> {
        if !self.first(0, "schools", &s.clever_id).await? {
            return Ok(());
        }
        Row::new(&mut self.schools.buf)
            .text(Some(&s.clever_id))
            .text(Some(&s.name))
            .text(s.sis_id.as_deref())
            .text(s.low_grade.map(|g| g.as_str()))
            .text(s.high_grade.map(|g| g.as_str()))
            .end();
        self.schools.rows += 1;
        self.schools.maybe_flush(&self.sink).await
    }

    pub async fn classroom(&mut self, c: &StagedClassroom) -> Result<(), SyncError> {
        if !self.first(1, "sections", &c.clever_id).await? {
            return Ok(());
        }
        let homeroom = c.subject.as_deref().is_some_and(is_homeroom);
        Row::new(&mut self.classrooms.buf)
            .text(Some(&c.clever_id))
            .text(Some(&c.school_clever_id))
            .text(Some(&c.name))
            .text(c.grade.map(|g| g.as_str()))
            .text(c.subject.as_deref())
            .bool(homeroom)
            .text(c.teacher_clever_id.as_deref())
            .end();
        self.classrooms.rows += 1;
        self.sections.add(
            &c.clever_id,
            &c.school_clever_id,
            c.grade,
            homeroom,
            &c.students,
        );
        self.classrooms.maybe_flush(&self.sink).await
    }

    pub async fn child(&mut self, c: &StagedChild) -> Result<(), SyncError> {
        if !self.first(2, "children", &c.clever_id).await? {
            return Ok(());
        }
        let demo = c.demographics.as_ref();
        let dob = demo.and_then(|d| d.dob).map(|d| d.to_string());
        let placed = self.sections.place(
            &c.clever_id,
            c.primary_school.as_deref(),
            c.grade,
            c.dob_grade,
        );
        let n_sections = placed.map(|p| p.sections.to_string());
        if let Some(p) = placed {
            self.placement.add(&c.clever_id, p.classroom, p.sections);
        }
        let live = self
            .live
            .get()
            .await?
            .get(&id_key(&c.clever_id))
            .map(i64::to_string);
        self.prefilled += u64::from(live.is_some());
        Row::new(&mut self.children.buf)
            .text(Some(&c.clever_id))
            .text(c.sis_id.as_deref())
            .text(c.first_name.as_deref())
            .text(c.last_name.as_deref())
            .text(c.grade.map(|g| g.as_str()))
            .text(c.dob_grade.map(|g| g.as_str()))
            .text(c.primary_school.as_deref())
            .bool(demo.is_some())
            .text(dob.as_deref())
            .text(demo.and_then(|d| d.gender.as_deref()))
            .text(demo.and_then(|d| d.ell_status.as_deref()))
            .text(demo.and_then(|d| d.hispanic_ethnicity.as_deref()))
            .text(demo.and_then(|d| d.race.as_deref()))
            .text(demo.and_then(|d| d.home_language.as_deref()))
            .text(demo.and_then(|d| d.iep_status.as_deref()))
            .text(demo.and_then(|d| d.frl_status.as_deref()))
            .text(placed.map(|p| p.classroom))
            .text(placed.map(|p| p.school))
            .text(placed.and_then(|p| p.grade).map(|g| g.as_str()))
            .text(n_sections.as_deref())
            .text(live.as_deref())
            .text(live.as_ref().map(|_| "live"))
            .end();
        self.children.rows += 1;
        self.children.maybe_flush(&self.sink).await
    }

    pub async fn educator(&mut self, e: &StagedEducator) -> Result<(), SyncError> {
        if !self.first(3, "educators", &e.clever_id).await? {
            return Ok(());
        }
        Row::new(&mut self.educators.buf)
            .text(Some(&e.clever_id))
            .text(e.school_clever_id.as_deref())
            .text(e.sis_id.as_deref())
            .text(e.first_name.as_deref())
            .text(e.last_name.as_deref())
            .text(e.email.as_deref())
            .text(e.title.as_deref())
            .end();
        self.educators.rows += 1;
        self.educators.maybe_flush(&self.sink).await
    }

    pub async fn problem(&mut self, p: &Problem) -> Result<(), SyncError> {
        self.push_problem(p);
        self.problems.maybe_flush(&self.sink).await
    }

    /// Writes a problem's row (flushed with the next batch).
    fn push_problem(&mut self, p: &Problem) {
        Row::new(&mut self.problems.buf)
            .text(Some(&p.record_kind))
            .text(p.clever_id.as_deref())
            .text(Some(&p.code))
            .text(Some(&p.message))
            .end();
        self.problems.rows += 1;
    }

    /// Stages the problems found at the end and hands every pending row to the writer. Only
    /// `stg_children` is ever analyzed, once matched (`resolve`; docs/performance.md).
    async fn finish(mut self) -> Result<StagedTotals, SyncError> {
        // Students a kept section lists but Clever did not return: their enrollments are skipped.
        let not_staged: Vec<String> = self
            .sections
            .not_staged()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for id in not_staged {
            self.push_problem(&Problem {
                record_kind: "enrollments".into(),
                clever_id: Some(id),
                code: code::STUDENT_NOT_FOUND.into(),
                message: "a kept section lists this student but Clever did not return it; \
                          the enrollment is skipped"
                    .into(),
            });
        }
        for p in self.placement.problems() {
            self.push_problem(&p);
        }
        for buf in [
            &mut self.schools,
            &mut self.classrooms,
            &mut self.children,
            &mut self.educators,
            &mut self.problems,
        ] {
            buf.flush(&self.sink).await?;
        }
        Ok(StagedTotals {
            copy_time: std::time::Duration::ZERO,
            schools: self.schools.rows,
            classrooms: self.classrooms.rows,
            children: self.children.rows,
            educators: self.educators.rows,
            problems: self.problems.rows,
            prefilled: self.prefilled,
            placed: self.placement.placed,
        })
    }
}

/// Clever's homeroom subject is `homeroom/advisory`.
pub fn is_homeroom(subject: &str) -> bool {
    subject.trim().to_ascii_lowercase().starts_with("homeroom")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escaping() {
        let mut out = Vec::new();
        escape_into(&mut out, "a\\b\tc\nd\re\0f");
        assert_eq!(out, b"a\\\\b\\tc\\nd\\ref");
        // Each special byte alone takes the escaping path; a plain value is copied as it is.
        for (value, want) in [
            ("Zoë O'Brien-Łukasz", "Zoë O'Brien-Łukasz"),
            ("a\\b", "a\\\\b"),
            ("a\tb", "a\\tb"),
            ("a\nb", "a\\nb"),
            ("a\rb", "a\\rb"),
            ("a\0b", "ab"),
        ] {
            let mut out = b"x".to_vec();
            escape_into(&mut out, value);
            assert_eq!(out, [b"x", want.as_bytes()].concat(), "{value:?}");
        }
        let mut buf = Vec::new();
        Row::new(&mut buf)
            .text(Some("x"))
            .text(None)
            .bool(true)
            .end();
        assert_eq!(buf, b"x\t\\N\tt\n");
    }

    #[test]
    fn homeroom_subjects() {
        assert!(is_homeroom("homeroom/advisory"));
        assert!(is_homeroom("Homeroom"));
        assert!(!is_homeroom("math"));
    }
}
