//! Roster sources. [`StaticSource`] stages rows already normalized (tests, replays); the Clever
//! source streams the Clever API.
use super::SyncError;
use super::engine::{RosterSource, StageContext};
use super::model::{Problem, StagedChild, StagedClassroom, StagedEducator, StagedSchool};
use super::stage::Stager;

/// Already-normalized rows, staged as given (the filtering by shared grades has been done).
#[derive(Clone, Debug, Default)]
pub struct StaticSource {
    pub schools: Vec<StagedSchool>,
    pub classrooms: Vec<StagedClassroom>,
    pub children: Vec<StagedChild>,
    pub educators: Vec<StagedEducator>,
    pub problems: Vec<Problem>,
}

impl RosterSource for StaticSource {
    async fn stage(&self, ctx: &StageContext, stager: &mut Stager) -> Result<(), SyncError> {
        for s in &self.schools {
            stager.school(s).await?;
        }
        for c in &self.classrooms {
            stager.classroom(c).await?;
        }
        for c in &self.children {
            let mut c = c.clone();
            if !ctx.include_demographics {
                c.demographics = None;
            }
            stager.child(&c).await?;
        }
        for e in &self.educators {
            stager.educator(e).await?;
        }
        for p in &self.problems {
            stager.problem(p).await?;
        }
        Ok(())
    }
}
