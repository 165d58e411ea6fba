//! check_glue's accelerator checks on a Nova older than microversion 2.61
//! (the mock cloud refuses it with 406): extra specs are read flavor by flavor.

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::keystone_mock::PROJECT_ID;
use crate::mockcloud::{run, MockCloud};
use probes::checks::glue::Glue;
use probes::model::Status;
use probes::render::nagios;

/// The producer's sample, fresh, its ops share on the mock's project, with
/// the accelerator cloud-info-provider would publish for flavor 1.
fn publication() -> Value {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join("testdata/glue/cloud-info-provider-sample.json"))
        .unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let now = probes::clock::nova_time(probes::clock::now_secs());
    let now = format!("{}+00:00", &now[..19]);
    for list in doc.as_object_mut().unwrap().values_mut() {
        for o in list.as_array_mut().unwrap() {
            o["CreationTime"] = json!(now);
        }
    }
    for s in doc["Share"].as_array_mut().unwrap() {
        if s["ProjectID"] == "fixture-ops" {
            s["ProjectID"] = json!(PROJECT_ID);
        }
    }
    doc["CloudComputingVirtualAccelerator"] = json!([{
        "ID": "1_gpu", "Name": "m1.tiny_gpu", "CreationTime": now, "Validity": 43200,
        "Type": "GPU", "Number": 1, "Vendor": "AMD", "Model": "MI100",
        "Associations": {"CloudComputingInstanceType": ["1"]}}]);
    doc
}

#[tokio::test]
async fn older_nova_extra_specs_are_read_one_by_one() {
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors/detail"))
        .and(header("OpenStack-API-Version", "compute 2.61"))
        .respond_with(ResponseTemplate::new(406).set_body_json(json!({"computeFault": {
            "code": 406, "message": "Version 2.61 is not supported by the API. Minimum is 2.1 and maximum is 2.60."}})))
        .with_priority(1)
        .mount(&c.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors/1/os-extra_specs"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"extra_specs": {
            "Accelerator:Type": "GPU", "Accelerator:Number": "1",
            "Accelerator:Vendor": "AMD", "Accelerator:Model": "MI100"}})),
        )
        .with_priority(1)
        .mount(&c.server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/compute/v2.1/flavors/[0-9]+/os-extra_specs$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"extra_specs": {}})))
        .with_priority(2)
        .mount(&c.server)
        .await;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), publication().to_string()).unwrap();
    let file = f.path().display().to_string();
    let r = run::<Glue>(&c.argv(&["--glue-file", &file, "--glue-vo", "ops"])).await;
    let out = nagios::render(&r, 1);
    let step = |id: &str| r.steps.iter().find(|s| s.check == id).cloned();
    let a1 = step("ACCEL-01").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(a1.status, Status::Ok, "{out}");
    assert_eq!(
        a1.message,
        "1 accelerator flavor(s) well formed: m1.tiny GPU x1 AMD MI100"
    );
    let a2 = step("ACCEL-02").unwrap();
    assert_eq!(a2.status, Status::Ok, "{out}");
    assert_eq!(
        a2.message,
        "1 accelerator flavor(s) published alike in file"
    );
    let calls = c.calls().await;
    for id in ["1", "9", "10", "8"] {
        let want = format!("GET /compute/v2.1/flavors/{id}/os-extra_specs");
        assert!(calls.contains(&want), "{want} not in {calls:?}");
    }

    // The same publication where flavor 1 has no properties (the mock's
    // Nova lists none and has no os-extra_specs): WARNING.
    let c2 = MockCloud::start().await;
    let r = run::<Glue>(&c2.argv(&["--glue-file", &file, "--glue-vo", "ops"])).await;
    let out = nagios::render(&r, 1);
    let a2 = r.steps.iter().find(|s| s.check == "ACCEL-02").unwrap();
    assert_eq!(a2.status, Status::Warning, "{out}");
    assert!(
        a2.message.contains(
            "file: flavor m1.tiny (1) has no Accelerator:* properties but is published with GPU x1 AMD MI100 (1_gpu)"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn many_malformed_flavors_stay_under_16_kb_and_are_critical() {
    let c = MockCloud::start().await;
    let long = "x".repeat(255);
    let flavors: Vec<Value> = (0..300)
        .map(|i| {
            json!({"id": format!("{i}"), "name": format!("g{i}.{long}"), "vcpus": 1, "ram": 512, "disk": 1,
                "extra_specs": {"Accelerator:Number": long, "Accelerator:Type": long, "Accelerator:Memory": long}})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors/detail"))
        .and(header("OpenStack-API-Version", "compute 2.61"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "flavors": flavors })))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), publication().to_string()).unwrap();
    let file = f.path().display().to_string();
    let r = run::<Glue>(&c.argv(&["-v", "--glue-file", &file, "--glue-vo", "ops"])).await;
    let out = nagios::render(&r, 3);
    assert!(out.len() < 16 * 1024, "{} bytes", out.len());
    let a1 = r.steps.iter().find(|s| s.check == "ACCEL-01").unwrap();
    assert_eq!(a1.status, Status::Critical, "{out}");
    assert!(
        a1.message
            .starts_with("300 accelerator flavor(s), malformed properties: flavor g0."),
        "{}",
        a1.message
    );
    assert!(a1.message.ends_with("; 895 more"), "{}", a1.message);
    let calls = c.calls().await;
    assert!(
        !calls.iter().any(|x| x.ends_with("/os-extra_specs")),
        "listed with the flavors at 2.61: {calls:?}"
    );
}
