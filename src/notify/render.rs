//! Rendering an event into an email: a subject naming the district and the outcome, and a
//! plain-text and an HTML body from one structured content (what happened, the facts, the counts,
//! what to do next), laid out by the two templates below. Every value is HTML-escaped in the HTML
//! body; callers' messages go through [`scrub`].
use super::notice::{Counts, Notice, Source, scrub};
use crate::api::{APPROVE_REMOVALS_ANNOTATION, SYNC_NOW_ANNOTATION};

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A step of "what to do next", with an optional command to run.
struct Step {
    text: String,
    command: Option<String>,
}

/// What an email says, independent of its format.
struct Content {
    outcome: String,
    headline: String,
    facts: Vec<(&'static str, String)>,
    counts_title: &'static str,
    counts: Vec<(String, String)>,
    steps: Vec<Step>,
}

/// Renders the email for `event`.
pub fn render(event: &Notice) -> Rendered {
    let source = event.source();
    let content = content(event);
    let subject = one_line(&format!(
        "[rostersync] {}: {}",
        source.district_label(),
        content.outcome
    ));
    Rendered {
        subject,
        text: text_body(source, &content),
        html: html_body(source, &content),
    }
}

fn content(event: &Notice) -> Content {
    let source = event.source();
    let district = source.district_label().to_string();
    let (ns, name) = source
        .key()
        .map(|k| (k.namespace().to_string(), k.name().to_string()))
        .unwrap_or_default();
    let describe = Step {
        text: "Check the connection's status and conditions:".into(),
        command: Some(format!("kubectl -n {ns} describe rosterconnection {name}")),
    };
    let history = Step {
        text: "See the run history (counts, reasons, problems by code):".into(),
        command: Some(format!(
            "rostersync history --connection {}",
            source.connection
        )),
    };
    // The run's per-record problems, each with its Clever id and what to do.
    let problems = event.run_id().map(|run_id| Step {
        text: "See the run's per-record problems (Clever ids and what to do; -o csv for the SIS \
               team):"
            .into(),
        command: Some(format!(
            "rostersync problems {} {run_id}",
            source.connection
        )),
    });
    let mut facts = vec![
        ("Connection", source.connection.clone()),
        ("District", district_fact(source)),
    ];
    if let Some(run_id) = event.run_id() {
        facts.push(("Run", run_id.to_string()));
    }
    match event {
        Notice::RunFailed {
            reason,
            message,
            counts,
            ..
        } => {
            facts.push(("Reason", scrub(reason)));
            facts.push(("Details", scrub(message)));
            let mut steps = vec![];
            if matches!(
                reason.as_str(),
                "CleverUnavailable" | "CleverRateLimited" | "Timeout"
            ) {
                steps.push(Step {
                    text: "Clever was unavailable: the next scheduled run retries on its own. If \
                           it keeps failing, check Clever's status page."
                        .into(),
                    command: None,
                });
            }
            steps.push(history);
            steps.extend(problems);
            steps.push(describe);
            Content {
                outcome: "sync failed".into(),
                headline: format!(
                    "The roster sync of {district} failed. The roster was left exactly as it was \
                     before the run."
                ),
                facts,
                counts_title: "Counts of the failed run (nothing was applied)",
                counts: count_lines(counts),
                steps,
            }
        }
        Notice::RunHeld {
            run_id,
            schedule,
            reason,
            message,
            counts,
            ..
        } => {
            facts.push(("Reason", scrub(reason)));
            facts.push(("Details", scrub(message)));
            let total: u64 = counts.removals().iter().map(|(_, n)| n).sum();
            let schedule = schedule.as_deref().unwrap_or("SCHEDULE");
            Content {
                outcome: format!("sync held, would remove {total} records"),
                headline: format!(
                    "The roster sync of {district} was held by the removal guard: it would remove \
                     more records than the connection allows. Nothing was applied."
                ),
                facts,
                counts_title: "Would remove (deactivate or delete)",
                counts: counts
                    .removals()
                    .into_iter()
                    .map(|(e, n)| (e.to_string(), n.to_string()))
                    .collect(),
                steps: vec![
                    Step {
                        text: "Check in Clever that the district still shares these records (a \
                               sharing change or a term ending in the SIS are the usual causes). \
                               If not intended, fix it in Clever: the next run is not held."
                            .into(),
                        command: None,
                    },
                    Step {
                        text: "If the removals are intended, approve this run's removals once:"
                            .into(),
                        command: Some(format!(
                            "kubectl -n {ns} annotate ssched {schedule} \
                             {APPROVE_REMOVALS_ANNOTATION}={run_id} --overwrite"
                        )),
                    },
                    history,
                ]
                .into_iter()
                .chain(problems)
                .collect(),
            }
        }
        Notice::Recovered { counts, .. } => Content {
            outcome: "sync recovered".into(),
            headline: format!(
                "The roster sync of {district} succeeded again after the problem reported earlier."
            ),
            facts,
            counts_title: "Changes applied",
            counts: count_lines(counts),
            steps: vec![Step {
                text: "Nothing to do.".into(),
                command: None,
            }],
        },
        Notice::RunSucceeded { counts, .. } => Content {
            outcome: "sync succeeded".into(),
            headline: format!("The roster sync of {district} succeeded."),
            facts,
            counts_title: "Changes applied",
            counts: count_lines(counts),
            steps: vec![Step {
                text: "Nothing to do. (This email is sent for every successful sync because the \
                       connection's sendSuccessEmails setting is on.)"
                    .into(),
                command: None,
            }],
        },
        Notice::CredentialsInvalid { message, .. } => {
            facts.push(("Details", scrub(message)));
            Content {
                outcome: "Clever credentials invalid".into(),
                headline: format!(
                    "Clever rejected the credentials of the connection for {district}. No sync \
                     can run until they are fixed."
                ),
                facts,
                counts_title: "",
                counts: vec![],
                steps: vec![
                    Step {
                        text: "Find the Secret the connection uses (key token, or client_id and \
                               client_secret):"
                            .into(),
                        command: Some(format!(
                            "kubectl -n {ns} get rosterconnection {name} -o \
                             jsonpath='{{.spec.credentialsSecretRef.name}}'"
                        )),
                    },
                    Step {
                        text: "Put a valid district token (or app credentials) in it; the \
                               operator verifies the connection again on its own."
                            .into(),
                        command: None,
                    },
                    describe,
                ],
            }
        }
        Notice::DistrictNotFound { message, .. } => {
            facts.push(("Details", scrub(message)));
            Content {
                outcome: "district not found in Clever".into(),
                headline: format!(
                    "Clever does not know the district id {}, or the district does not share its \
                     data with the app. No sync can run.",
                    source.district_id
                ),
                facts,
                counts_title: "",
                counts: vec![],
                steps: vec![
                    Step {
                        text: "Double-check spec.districtId against the district's Clever \
                               dashboard, and that the district has shared its roster with the \
                               app."
                            .into(),
                        command: Some(format!(
                            "kubectl -n {ns} get rosterconnection {name} -o \
                             jsonpath='{{.spec.districtId}}'"
                        )),
                    },
                    describe,
                ],
            }
        }
        Notice::ConnectionMisconfigured {
            reason, message, ..
        } => {
            facts.push(("Reason", scrub(reason)));
            facts.push(("Details", scrub(message)));
            Content {
                outcome: "connection misconfigured".into(),
                headline: format!(
                    "The connection for {district} is not ready: no sync can run until its \
                     configuration is fixed."
                ),
                facts,
                counts_title: "",
                counts: vec![],
                steps: vec![
                    Step {
                        text: "Fix what the Details say (for JourneyPolicyNotFound: create the \
                               JourneyPolicy that spec.journeyPolicyRef names, or fix the \
                               reference); the operator checks the connection again on its own."
                            .into(),
                        command: Some(format!(
                            "kubectl -n {ns} get rosterconnection {name} -o \
                             jsonpath='{{.spec.journeyPolicyRef.name}}'"
                        )),
                    },
                    describe,
                ],
            }
        }
        Notice::ScheduleMissed {
            schedule,
            slot,
            reason,
            message,
            ..
        } => {
            facts.push(("Schedule", schedule.clone()));
            facts.push((
                "Missed slot",
                slot.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ));
            facts.push(("Reason", scrub(reason)));
            facts.push(("Details", scrub(message)));
            Content {
                outcome: "scheduled sync missed".into(),
                headline: format!("A scheduled roster sync of {district} did not run."),
                facts,
                counts_title: "",
                counts: vec![],
                steps: vec![
                    Step {
                        text: "Check the schedule (suspended? next run?):".into(),
                        command: Some(format!("kubectl -n {ns} describe ssched {schedule}")),
                    },
                    Step {
                        text: "To sync now instead of waiting for the next slot:".into(),
                        command: Some(format!(
                            "kubectl -n {ns} annotate ssched {schedule} \
                             {SYNC_NOW_ANNOTATION}=\"$(date +%s)\" --overwrite"
                        )),
                    },
                ],
            }
        }
    }
}

fn district_fact(source: &Source) -> String {
    match source.district_name.as_deref() {
        Some(name) if !name.trim().is_empty() => {
            format!("{} (Clever id {})", one_line(name), source.district_id)
        }
        _ => format!("Clever id {}", source.district_id),
    }
}

/// One line per entity: `3 created, 1 updated`; entities without counts are left out.
fn count_lines(counts: &Counts) -> Vec<(String, String)> {
    counts
        .lines()
        .into_iter()
        .map(|(entity, line)| (entity.to_string(), line))
        .collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn footer(source: &Source) -> String {
    format!(
        "Sent by rostersync for the RosterConnection {}: your address is in its \
         spec.settings.emailRecipients. Repeats of the same problem are sent at most once a day.",
        source.connection
    )
}

/// The plain-text template.
fn text_body(source: &Source, c: &Content) -> String {
    let mut out = format!("{}\n\n", c.headline);
    let width = c.facts.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    for (label, value) in &c.facts {
        out.push_str(&format!("{:<width$} {value}\n", format!("{label}:")));
    }
    if !c.counts.is_empty() {
        out.push_str(&format!("\n{}:\n", c.counts_title));
        let width = c.counts.iter().map(|(e, _)| e.len()).max().unwrap_or(0) + 1;
        for (entity, line) in &c.counts {
            out.push_str(&format!("  {:<width$} {line}\n", format!("{entity}:")));
        }
    }
    out.push_str("\nWhat to do next:\n");
    for (i, step) in c.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, step.text));
        if let Some(cmd) = &step.command {
            out.push_str(&format!("       {cmd}\n"));
        }
    }
    out.push_str(&format!("\n-- \n{}\n", footer(source)));
    out
}

/// The HTML template: simple inline-styled markup that mail clients render consistently.
fn html_body(source: &Source, c: &Content) -> String {
    let mut facts = String::new();
    for (label, value) in &c.facts {
        facts.push_str(&format!(
            "<tr><th style=\"text-align:left;padding-right:1em\">{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(value)
        ));
    }
    let mut counts = String::new();
    if !c.counts.is_empty() {
        counts.push_str(&format!("<h3>{}</h3>\n<table>\n", escape(c.counts_title)));
        for (entity, line) in &c.counts {
            counts.push_str(&format!(
                "<tr><th style=\"text-align:left;padding-right:1em\">{}</th><td>{}</td></tr>\n",
                escape(entity),
                escape(line)
            ));
        }
        counts.push_str("</table>\n");
    }
    let mut steps = String::new();
    for step in &c.steps {
        steps.push_str(&format!("<li>{}", escape(&step.text)));
        if let Some(cmd) = &step.command {
            steps.push_str(&format!("<br><code>{}</code>", escape(cmd)));
        }
        steps.push_str("</li>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family:sans-serif;line-height:1.4\">\n\
         <p>{headline}</p>\n<table>\n{facts}</table>\n{counts}\
         <h3>What to do next</h3>\n<ol>\n{steps}</ol>\n\
         <p style=\"color:#666;font-size:small\">{footer}</p>\n</body></html>\n",
        title = escape(&c.outcome),
        headline = escape(&c.headline),
        footer = escape(&footer(source)),
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
