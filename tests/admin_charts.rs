//! The charts' part of issue 16, rendered with the real helm: the district chart takes a whole
//! instant login link as districtId (and says district_id= when it cannot use it) and renders
//! settings.rolloverDate; the operator chart passes licensedProducts to the controller, whose
//! binary accepts it. `kubectl roster district-id` extracts the same id.
mod common;

use std::process::Command;

const ID: &str = "5e8f0c1a2b3c4d5e6f708192";

fn helm_available() -> bool {
    common::tool_available("helm", "version", "hack/k8s/build.sh builds it")
}

fn template(chart: &str, args: &[&str]) -> (bool, String, String) {
    let chart = common::repo_path("charts").join(chart);
    let chart = chart.to_string_lossy();
    let mut all = vec!["template", "t", chart.as_ref(), "--namespace", "ops"];
    all.extend_from_slice(args);
    common::run_tool("helm", &all)
}

fn link() -> String {
    format!(
        "https://clever.com/oauth/authorize?channel=clever&client_id=0a1b2c&confirmed=true&district_id={}&redirect_uri=https%3A%2F%2Fapp.example%2Fclever&response_type=code",
        ID.to_uppercase()
    )
}

#[test]
fn the_district_chart_takes_a_whole_instant_login_link_and_a_rollover_date() {
    if !helm_available() {
        return;
    }
    let district = |id: &str, extra: &[&str]| {
        let id_arg = format!("districtId={id}");
        let mut args = vec![
            "--set-string",
            id_arg.as_str(),
            "--set",
            "journey.licensedProducts={Early Math}",
            "--set",
            "journey.newChildJourney=Early Math",
        ];
        args.extend_from_slice(extra);
        template("rostersync-district", &args)
    };
    let (ok, out, err) = district(&link(), &["--set", "settings.rolloverDate=07-01"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("districtId: \"{ID}\"")), "{out}");
    assert!(out.contains("rolloverDate: \"07-01\""), "{out}");
    let (ok, out, err) = district(ID, &[]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("districtId: \"{ID}\"")));
    assert!(!out.contains("rolloverDate"), "unset by default");
    let (ok, _, err) = district("https://clever.com/oauth/authorize?client_id=0a1b2c", &[]);
    assert!(!ok);
    assert!(err.contains("district_id="), "{err}");
    let (ok, _, err) = district(ID, &["--set", "settings.rolloverDate=7/1"]);
    assert!(!ok, "a bad rolloverDate renders");
    assert!(err.contains("rolloverDate"), "{err}");
}

#[test]
fn the_operator_chart_passes_licensed_products_to_a_controller_that_accepts_them() {
    if !helm_available() {
        return;
    }
    let (ok, out, err) = template(
        "rostersync",
        &["--set", "licensedProducts={Early Math,Early Literacy}"],
    );
    assert!(ok, "{err}");
    let arg = "--licensed-products=Early Math,Early Literacy";
    assert!(out.contains(arg), "{out}");
    let (ok, out, _) = template("rostersync", &[]);
    assert!(ok);
    assert!(!out.contains("--licensed-products"), "unset by default");
    let help = Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args([
            "controller",
            "--database-url",
            "postgres://x@127.0.0.1/x",
            arg,
            "--help",
        ])
        .output()
        .expect("rostersync");
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
}

#[test]
fn kubectl_roster_district_id_extracts_the_id_from_a_link() {
    let run = |input: &str| {
        Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
            .args(["district-id", input])
            .output()
            .expect("kubectl-roster")
    };
    let out = run(&link());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{ID}\n"));
    let bad = run("https://clever.com/oauth/authorize?client_id=0a1b2c");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("district_id="));
}
