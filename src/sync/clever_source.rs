//! The Clever roster source: streams schools, sections, students and teachers page by page and
//! stages only what the connection shares. Memory holds the schools (few) and the ids needed to
//! filter (kept students, teachers, schools), never the records themselves.
use std::collections::{HashMap, HashSet};

use foldhash::HashSetExt as _;

use futures::{Stream, StreamExt};

use super::SyncError;
use super::engine::{RosterSource, StageContext};
use super::model::{
    Demographics, Problem, StagedChild, StagedClassroom, StagedEducator, StagedSchool, code,
};
use super::plan;
use super::stage::Stager;
use crate::api::Grade;
use crate::clever::{
    self, CleverClient, CleverCredentials, CleverError, ClientConfig, Decoded, Role,
};

/// Streams one district from the Clever API. Credentials are resolved inside the run, so bad
/// credentials are recorded as a Failed run like any other Clever error.
#[derive(Clone, Debug)]
pub struct CleverSource {
    pub config: ClientConfig,
    pub credentials: CleverCredentials,
    /// The run's clients (their counters are shared by their clones), for [`RosterSource::requests`].
    clients: std::sync::Arc<std::sync::Mutex<Vec<CleverClient>>>,
}

impl CleverSource {
    /// A source with production client settings for `base_url`.
    pub fn new(base_url: url::Url, credentials: CleverCredentials) -> Self {
        CleverSource {
            config: ClientConfig::new(base_url, clever::Token::new(String::new())),
            credentials,
            clients: Default::default(),
        }
    }

    async fn client(&self, district_id: &str) -> Result<CleverClient, CleverError> {
        let mut cfg = self.config.clone();
        cfg.token = match &self.credentials {
            CleverCredentials::Token(t) => t.clone(),
            CleverCredentials::App(app) => {
                clever::lookup_district_token(&cfg, app, district_id).await?
            }
        };
        let client = CleverClient::new(cfg)?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.push(client.clone());
        }
        Ok(client)
    }
}

/// Converts a Clever grade into the API's grade (unknown values: none).
pub fn grade(g: Option<&clever::CleverGrade>) -> Option<Grade> {
    g.and_then(|g| Grade::parse(&g.as_clever()))
}

impl From<CleverError> for SyncError {
    fn from(err: CleverError) -> SyncError {
        SyncError::Source {
            reason: err.reason(),
            message: err.to_string(),
            retriable: err.is_retriable(),
        }
    }
}

fn invalid(kind: &str, p: &clever::RecordProblem) -> Problem {
    Problem {
        record_kind: kind.into(),
        clever_id: p.id.clone(),
        code: code::INVALID_RECORD.into(),
        message: p.message.clone(),
    }
}

/// Records buffered ahead of the consumer (the client holds one decoded page besides).
const PREFETCH: usize = 2_000;

/// Aborts the prefetch task when the consumer is dropped (the run failed or finished).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a Clever stream in its own task, up to [`PREFETCH`] records ahead, so that fetching and
/// decoding the next pages overlaps with staging the current one.
fn prefetch<T: Send + 'static>(
    stream: impl Stream<Item = Result<Decoded<T>, CleverError>> + Send + 'static,
) -> impl Stream<Item = Result<Decoded<T>, CleverError>> + Unpin {
    let (tx, rx) = tokio::sync::mpsc::channel(PREFETCH);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    Box::pin(futures::stream::unfold(
        (rx, AbortOnDrop(task)),
        |(mut rx, guard)| async move { rx.recv().await.map(|item| (item, (rx, guard))) },
    ))
}

/// Pulls the next record, turning a stream error into a sync error.
async fn next<T, S>(stream: &mut S) -> Result<Option<Decoded<T>>, SyncError>
where
    S: Stream<Item = Result<Decoded<T>, CleverError>> + Unpin,
{
    match stream.next().await {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => Err(e.into()),
    }
}

impl RosterSource for CleverSource {
    fn requests(&self) -> crate::run::CleverRequests {
        let clients = self.clients.lock().map(|c| c.clone()).unwrap_or_default();
        clients.iter().map(CleverClient::stats).fold(
            crate::run::CleverRequests::default(),
            |sum, s| crate::run::CleverRequests {
                requests: sum.requests + s.requests,
                retries: sum.retries + s.retries,
                rate_limited: sum.rate_limited + s.rate_limited,
            },
        )
    }

    async fn stage(&self, ctx: &StageContext, stager: &mut Stager) -> Result<(), SyncError> {
        // Counted per run: a source used again starts from zero.
        if let Ok(mut clients) = self.clients.lock() {
            clients.clear();
        }
        let started = std::time::Instant::now();
        let elapsed_ms = || started.elapsed().as_millis() as u64;
        let client = self.client(&ctx.district_id).await?;
        client.district(&ctx.district_id).await?;

        // Schools first (a district has hundreds): ungraded sections are kept by their school's range.
        let mut schools: HashMap<String, clever::School> = HashMap::new();
        // Each list is fetched a little ahead of staging (memory stays at a few pages, whatever
        // the district's size). Schools, sections and students start together (a page of each in
        // memory at most, with a batch of records: a page of 10,000 users is the largest thing a
        // sync holds); teachers once sections are staged.
        let mut stream = prefetch(client.schools());
        // A section whose grade is outside the shared grades is only scanned, never decoded (with
        // its list of students, it is the largest record Clever sends); an ungraded one is
        // decoded and judged by its school's range below.
        let shared = ctx.shared_grades.clone();
        let mut section_stream = prefetch(client.sections_where(std::sync::Arc::new(
            move |raw: &clever::RawValue| section_may_be_kept(raw, &shared),
        )));
        // Every student page is read, but only the kept sections' students are decoded: the
        // first pages are fetched and scanned while the sections are staged, and their decoding
        // waits for the kept students' ids (a page's latency off every run).
        let kept_students = KeptIds::default();
        let mut student_stream =
            prefetch(client.users_where(Role::Student, keep_ids(&kept_students)));
        while let Some(item) = next(&mut stream).await? {
            match item {
                Ok(s) => {
                    schools.insert(s.id.clone(), s);
                }
                Err(p) => stager.problem(&invalid("schools", &p)).await?,
            }
        }

        let mut students: foldhash::HashSet<Box<str>> = foldhash::HashSet::new();
        let mut teachers: foldhash::HashSet<Box<str>> = foldhash::HashSet::new();
        let mut kept_schools: HashSet<String> = HashSet::new();
        while let Some(item) = next(&mut section_stream).await? {
            let section = match item {
                Ok(s) => s,
                Err(p) => {
                    stager.problem(&invalid("sections", &p)).await?;
                    continue;
                }
            };
            let range = schools
                .get(&section.school)
                .and_then(|s| Some((grade(s.low_grade.as_ref())?, grade(s.high_grade.as_ref())?)));
            if !plan::section_kept(grade(section.grade.as_ref()), range, &ctx.shared_grades) {
                continue;
            }
            students.extend(
                section
                    .students
                    .iter()
                    .map(|s| Box::<str>::from(s.as_str())),
            );
            let teacher = section
                .teacher
                .clone()
                .or_else(|| section.teachers.first().cloned());
            teachers.extend(
                section
                    .teachers
                    .iter()
                    .chain(teacher.iter())
                    .map(|t| Box::<str>::from(t.as_str())),
            );
            kept_schools.insert(section.school.clone());
            let name =
                plan::normalize_name(Some(&section.name)).unwrap_or_else(|| section.id.clone());
            stager
                .classroom(&StagedClassroom {
                    clever_id: section.id,
                    school_clever_id: section.school,
                    name,
                    grade: grade(section.grade.as_ref()),
                    subject: section.subject,
                    teacher_clever_id: teacher,
                    students: section.students,
                })
                .await?;
        }

        drop(section_stream);
        tracing::debug!(elapsed_ms = elapsed_ms(), "schools and sections staged");
        // The kept sections name every teacher to stage: the teachers' list is fetched (a page and
        // a batch of records ahead) while students are staged, and staged after them.
        let kept_teachers = KeptIds::default();
        kept_teachers.set(teachers.clone());
        let mut teacher_stream =
            prefetch(client.users_where(Role::Teacher, keep_ids(&kept_teachers)));
        let students = kept_students.set(students);
        while let Some(item) = next(&mut student_stream).await? {
            match item {
                Ok(user) if students.contains(user.id.as_str()) => {
                    if let Some(child) = child(user, ctx) {
                        stager.child(&child).await?;
                    }
                }
                Ok(_) => {}
                Err(p) if p.id.as_deref().is_some_and(|id| students.contains(id)) => {
                    stager.problem(&invalid("children", &p)).await?;
                }
                Err(_) => {}
            }
        }
        drop(student_stream);
        drop(kept_students);
        tracing::debug!(elapsed_ms = elapsed_ms(), "students staged");
        let mut found_teachers = 0usize;
        while let Some(item) = next(&mut teacher_stream).await? {
            match item {
                Ok(user) if teachers.contains(user.id.as_str()) => {
                    found_teachers += 1;
                    teachers.remove(user.id.as_str());
                    if let Some(e) = educator(user) {
                        stager.educator(&e).await?;
                    }
                }
                Ok(_) => {}
                Err(p) if p.id.as_deref().is_some_and(|id| teachers.contains(id)) => {
                    stager.problem(&invalid("educators", &p)).await?;
                }
                Err(_) => {}
            }
        }
        let mut missing: Vec<_> = teachers.into_iter().collect();
        missing.sort();
        for id in missing {
            let message =
                "a kept section names this teacher but Clever did not return it".to_string();
            stager
                .problem(&Problem {
                    record_kind: "educators".into(),
                    clever_id: Some(id.into()),
                    code: code::TEACHER_NOT_FOUND.into(),
                    message,
                })
                .await?;
        }
        tracing::debug!(found_teachers, elapsed_ms = elapsed_ms(), "teachers staged");

        let mut kept: Vec<_> = kept_schools.into_iter().collect();
        kept.sort();
        for id in kept {
            match schools.remove(&id) {
                Some(s) => stager.school(&school(s)).await?,
                None => {
                    let message =
                        "a kept section belongs to this school but Clever did not return it"
                            .to_string();
                    stager
                        .problem(&Problem {
                            record_kind: "schools".into(),
                            clever_id: Some(id),
                            code: code::SCHOOL_NOT_FOUND.into(),
                            message,
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// The ids of the users a list decodes ([`keep_ids`]), known once the sections are staged; a
/// decoder waits for them. However staging ends, a decoder still waiting is released when this
/// is dropped (with no ids: its list is being dropped too), so no decoding thread is left blocked.
#[derive(Default)]
struct KeptIds(std::sync::Arc<std::sync::OnceLock<foldhash::HashSet<Box<str>>>>);

impl KeptIds {
    /// Makes the ids known to the waiting decoders; returns them for the caller's own checks.
    fn set(&self, ids: foldhash::HashSet<Box<str>>) -> &foldhash::HashSet<Box<str>> {
        let _ = self.0.set(ids);
        self.0.wait()
    }
}

impl Drop for KeptIds {
    fn drop(&mut self) {
        let _ = self.0.set(foldhash::HashSet::default());
    }
}

/// Decodes users whose id is in `ids`, waiting until they are known; one without a readable id is
/// decoded, so that its problem is seen (and dropped by the caller when not wanted).
fn keep_ids(ids: &KeptIds) -> clever::Keep {
    let ids = ids.0.clone();
    std::sync::Arc::new(move |raw: &clever::RawValue| {
        clever::record_id(raw).is_none_or(|id| ids.wait().contains(&*id))
    })
}

/// A section's grade, as the client decodes it.
#[derive(serde::Deserialize)]
struct SectionGrade(#[serde(deserialize_with = "clever::wire::grade")] Option<clever::CleverGrade>);

/// False only for a section whose grade is readable and not shared ([`plan::section_kept`] with
/// a grade does not look at the school). An ungraded section, or one whose grade cannot be read,
/// is decoded: the first is judged by its school's range, the second is reported. The section is
/// read up to its grade only (its list of students, when it comes after, is not read).
fn section_may_be_kept(raw: &clever::RawValue, shared: &[Grade]) -> bool {
    match clever::seek_field::<SectionGrade>(raw.get(), "grade") {
        clever::Field::Found(SectionGrade(g)) => {
            grade(g.as_ref()).is_none_or(|g| shared.contains(&g))
        }
        clever::Field::Absent | clever::Field::Unreadable => true,
    }
}

fn school(s: clever::School) -> StagedSchool {
    let name = plan::normalize_name(Some(&s.name)).unwrap_or_else(|| s.id.clone());
    StagedSchool {
        low_grade: grade(s.low_grade.as_ref()),
        high_grade: grade(s.high_grade.as_ref()),
        clever_id: s.id,
        name,
        sis_id: s.sis_id,
    }
}

/// Normalizes a student into a staged child (`None` if the user has no student role).
pub fn child(user: clever::User, ctx: &StageContext) -> Option<StagedChild> {
    let role = user.roles.student?;
    let demographics = ctx.include_demographics.then_some(Demographics {
        dob: role.dob,
        gender: role.gender,
        ell_status: role.ell_status,
        hispanic_ethnicity: role.hispanic_ethnicity,
        race: role.race,
        home_language: role.home_language,
        iep_status: role.iep_status,
        frl_status: role.frl_status,
    });
    let dob_grade = match (ctx.dob_cutoff, role.dob) {
        (Some(cutoff), Some(dob)) if ctx.include_demographics => {
            plan::grade_from_dob(dob, cutoff, ctx.today)
        }
        _ => None,
    };
    Some(StagedChild {
        clever_id: user.id,
        sis_id: role.sis_id,
        first_name: plan::normalize_name(user.name.first.as_deref()),
        last_name: plan::normalize_name(user.name.last.as_deref()),
        grade: grade(role.grade.as_ref()),
        dob_grade,
        primary_school: role.school,
        demographics,
    })
}

fn educator(user: clever::User) -> Option<StagedEducator> {
    let role = user.roles.teacher?;
    Some(StagedEducator {
        clever_id: user.id,
        school_clever_id: role.school.or_else(|| role.schools.first().cloned()),
        sis_id: role.sis_id,
        first_name: plan::normalize_name(user.name.first.as_deref()),
        last_name: plan::normalize_name(user.name.last.as_deref()),
        email: user.email,
        title: role.title,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<clever::RawValue> {
        clever::RawValue::from_string(json.to_owned()).expect("json")
    }

    #[test]
    fn sections_outside_the_shared_grades_are_not_decoded() {
        let shared = [Grade::PreKindergarten, Grade::Kindergarten];
        for (json, want, why) in [
            (
                r#"{"id":"s","grade":"Kindergarten","students":[1]}"#,
                true,
                "shared grade",
            ),
            (
                r#"{"id":"s","grade":"7","students":["a"]}"#,
                false,
                "other grade",
            ),
            (
                r#"{"id":"s","students":["a"]}"#,
                true,
                "ungraded: judged by its school later",
            ),
            (
                r#"{"id":"s","grade":"","students":["a"]}"#,
                true,
                "blank grade is ungraded",
            ),
            (
                r#"{"id":"s","grade":{"x":1}}"#,
                true,
                "unreadable grade: decoded, reported",
            ),
            (
                r#"{"id":"s","grade":"Ungraded"}"#,
                false,
                "Ungraded is a grade, not shared here",
            ),
        ] {
            assert_eq!(
                section_may_be_kept(&raw(json), &shared),
                want,
                "{why}: {json}"
            );
        }
        // Never stricter than the rule itself, whatever the school's range.
        for g in Grade::ALL {
            let json = format!(r#"{{"grade":"{}"}}"#, g.as_str());
            if plan::section_kept(Some(g), None, &shared) {
                assert!(section_may_be_kept(&raw(&json), &shared), "{json}");
            }
        }
    }

    #[test]
    fn a_decoder_waits_for_the_kept_ids_and_is_released_however_staging_ends() {
        let kept = KeptIds::default();
        let keep = keep_ids(&kept);
        let waiting = std::thread::spawn({
            let keep = keep.clone();
            move || keep(&raw(r#"{"id":"a1"}"#))
        });
        kept.set(foldhash::HashSet::from_iter([Box::<str>::from("a1")]));
        assert!(waiting.join().expect("decoder"), "a kept id, once known");
        assert!(!keep(&raw(r#"{"id":"b2"}"#)));
        // Staging ended before the sections did: the waiting decoder keeps nothing, and ends.
        let kept = KeptIds::default();
        let keep = keep_ids(&kept);
        let waiting = std::thread::spawn(move || keep(&raw(r#"{"id":"a1"}"#)));
        drop(kept);
        assert!(!waiting.join().expect("decoder"));
    }

    #[test]
    fn users_are_decoded_by_id_and_unreadable_ids_are_decoded() {
        let kept = KeptIds::default();
        kept.set(foldhash::HashSet::from_iter([Box::<str>::from("a1")]));
        let keep = keep_ids(&kept);
        assert!(keep(&raw(r#"{"id":"a1","name":{}}"#)));
        assert!(!keep(&raw(r#"{"id":"b2","name":{}}"#)));
        assert!(
            keep(&raw(r#"{"name":{}}"#)),
            "no id: decoded, its problem seen"
        );
        assert!(keep(&raw(r#"{"id":7}"#)), "a non-string id: decoded");
    }
}
