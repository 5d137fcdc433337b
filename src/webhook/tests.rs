use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::inject::{inject, yaml_to_json, InjectOptions};

const WORKLOADS: &str = include_str!("../../tests/webhook/workloads.yaml");

fn native() -> InjectOptions {
    InjectOptions::default()
}

fn classic() -> InjectOptions {
    InjectOptions {
        native_sidecar: false,
        image: "registry.example/podpath:9.9.9".to_owned(),
        metrics_port: 9900,
    }
}

/// The fixture documents as text, split on `---` lines.
fn documents() -> Vec<String> {
    WORKLOADS
        .split("\n---\n")
        .map(|d| format!("{}\n", d.trim_end()))
        .collect()
}

/// The pod a workload's controller would create from its template, as the
/// API server hands it to the webhook.
fn pod_of(object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let namespace = object["metadata"]["namespace"].clone();
    if kind == "Pod" {
        return object.clone();
    }
    let mut meta = object["spec"]["template"]["metadata"].clone();
    if meta.is_null() {
        meta = json!({});
    }
    meta["namespace"] = namespace;
    match kind {
        "StatefulSet" => meta["name"] = json!(format!("{name}-0")),
        "Deployment" => {
            let hash = meta["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or("7c5b9d");
            meta["generateName"] = json!(format!("{name}-{hash}-"));
        }
        _ => meta["generateName"] = json!(format!("{name}-")),
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": object["spec"]["template"]["spec"],
    })
}

fn review_of(pod: &Value, uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    }))
    .unwrap()
}

/// The pod after the API server applied the answer's patch.
fn admitted(webhook: &Webhook, pod: &Value) -> (Outcome, Value) {
    let answer = webhook.review(&review_of(pod, "uid-1")).unwrap();
    let response = &answer.body["response"];
    assert_eq!(response["uid"], "uid-1");
    assert_eq!(response["allowed"], true);
    assert_eq!(answer.body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer.body["kind"], "AdmissionReview");
    let mut pod = pod.clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
    } else {
        assert!(response.get("patchType").is_none());
    }
    (answer.outcome, pod)
}

/// The pod spec inside a workload.
fn template_spec(object: &Value) -> &Value {
    if object["kind"] == "Pod" {
        &object["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    }
}

#[test]
fn every_fixture_gets_its_expected_outcome() {
    let webhook = Webhook::new(&native()).unwrap();
    let mut seen = Vec::new();
    for doc in documents() {
        let object = yaml_to_json(&doc).unwrap();
        let expect = object["metadata"]["annotations"]["podpath.test/expect"]
            .as_str()
            .unwrap()
            .to_owned();
        let (outcome, pod) = admitted(&webhook, &pod_of(&object));
        assert_eq!(outcome.as_str(), expect, "{}", object["metadata"]);
        let podpaths = |list: &str| {
            pod["spec"][list]
                .as_array()
                .map_or(0, |cs| cs.iter().filter(|c| c["name"] == "podpath").count())
        };
        let expected =
            usize::from(expect != "host_network" && expect != "opted_out" && expect != "own_pod");
        assert_eq!(
            podpaths("initContainers") + podpaths("containers"),
            expected,
            "{expect}"
        );
        seen.push(expect);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "already_injected",
            "host_network",
            "injected",
            "opted_out",
            "own_pod"
        ]
    );
}

/// One source of truth: the pod the webhook's patch produces is the pod
/// template `podpath inject` writes, for both sidecar kinds.
#[test]
fn webhook_patch_equals_inject() {
    for opts in [native(), classic()] {
        let webhook = Webhook::new(&opts).unwrap();
        let mut compared = 0;
        for doc in documents() {
            let object = yaml_to_json(&doc).unwrap();
            let expect = &object["metadata"]["annotations"]["podpath.test/expect"];
            // Opting out and the webhook's own pod are admission-time
            // decisions; `inject` adds the sidecar to what it is given.
            if expect == "opted_out" || expect == "own_pod" {
                continue;
            }
            let injected = yaml_to_json(&inject(&doc, &opts).unwrap()).unwrap();
            let (outcome, pod) = admitted(&webhook, &pod_of(&object));
            assert_eq!(
                &pod["spec"],
                template_spec(&injected),
                "{} (native {})",
                object["metadata"]["name"],
                opts.native_sidecar
            );
            // The version annotation is set on the expected side rather than
            // required of `inject`'s output: setting it twice is a no-op, so
            // this holds whether or not this `inject` records it.
            let mut expected = pod_of(&injected)["metadata"].clone();
            if outcome == Outcome::Injected {
                expected["annotations"][VERSION_ANNOTATION] = json!(env!("CARGO_PKG_VERSION"));
            }
            assert_eq!(pod["metadata"], expected);
            compared += 1;
        }
        assert_eq!(compared, 6);
    }
}

#[test]
fn native_sidecar_goes_first_and_classic_last() {
    let object = yaml_to_json(&documents()[0]).unwrap();
    let (_, pod) = admitted(&Webhook::new(&native()).unwrap(), &pod_of(&object));
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&pod["spec"]["initContainers"]),
        ["podpath", "migrate"]
    );
    assert_eq!(pod["spec"]["initContainers"][0]["restartPolicy"], "Always");
    let (_, pod) = admitted(&Webhook::new(&classic()).unwrap(), &pod_of(&object));
    assert_eq!(names(&pod["spec"]["containers"]), ["web", "podpath"]);
    assert_eq!(
        pod["spec"]["containers"][1]["image"],
        "registry.example/podpath:9.9.9"
    );
    assert_eq!(
        pod["spec"]["containers"][1]["ports"][0]["containerPort"],
        9900
    );
    assert!(pod["spec"]["containers"][1].get("restartPolicy").is_none());
}

/// `reinvocationPolicy: IfNeeded` may call the webhook again on the pod
/// its own patch produced: the second answer has no patch.
#[test]
fn reinvocation_adds_nothing() {
    let webhook = Webhook::new(&native()).unwrap();
    for doc in documents() {
        let (_, once) = admitted(&webhook, &pod_of(&yaml_to_json(&doc).unwrap()));
        let (outcome, twice) = admitted(&webhook, &once);
        assert_ne!(outcome, Outcome::Injected);
        assert_eq!(once, twice);
    }
}

#[test]
fn pods_without_init_containers_get_the_list() {
    let webhook = Webhook::new(&native()).unwrap();
    for init in [None, Some(Value::Null)] {
        let mut pod = json!({"metadata": {"generateName": "x-"}, "spec": {"containers": [{"name": "a", "image": "a"}]}});
        if let Some(v) = init {
            pod["spec"]["initContainers"] = v;
        }
        let ops = webhook.patch(&pod).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0]["path"], "/spec/initContainers");
        assert_eq!(ops[0]["value"][0]["name"], "podpath");
        assert_eq!(ops[1]["path"], "/metadata/annotations");
    }
}

/// The version annotation joins existing annotations (its `/` escaped in the
/// JSON Pointer), or creates the map.
#[test]
fn version_annotation_is_recorded() {
    let webhook = Webhook::new(&native()).unwrap();
    let containers = json!([{"name": "a", "image": "a"}]);
    for meta in [
        json!({"generateName": "x-"}),
        json!({"generateName": "x-", "annotations": {"a/b": "c"}}),
        json!({"generateName": "x-", "annotations": null}),
    ] {
        let pod = json!({"metadata": meta.clone(), "spec": {"containers": containers}});
        let (outcome, admitted) = admitted(&webhook, &pod);
        assert_eq!(outcome, Outcome::Injected);
        let annotations = admitted["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations[VERSION_ANNOTATION], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            annotations.len(),
            1 + usize::from(meta["annotations"].is_object())
        );
    }
    let (_, admitted) = admitted(&webhook, &json!({"spec": {"containers": containers}}));
    assert_eq!(
        admitted["metadata"]["annotations"][VERSION_ANNOTATION],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    let webhook = Webhook::new(&native()).unwrap();
    for body in [
        &b""[..],
        b"{",
        b"[]",
        b"null",
        b"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\"}}",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\"}}",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":7}}",
        b"\xff\xfe",
    ] {
        assert!(webhook.review(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn odd_reviews_are_allowed_without_a_patch() {
    let webhook = Webhook::new(&native()).unwrap();
    let review = |request: Value| {
        let body = serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request,
        }))
        .unwrap();
        let answer = webhook.review(&body).unwrap();
        assert_eq!(answer.body["response"]["allowed"], true);
        assert!(answer.body["response"].get("patch").is_none());
        answer.outcome
    };
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "a"}]}});
    // An UPDATE, a Deployment, a Pod in another group: not ours to patch.
    assert_eq!(
        review(
            json!({"uid": "1", "operation": "UPDATE", "kind": {"group": "", "kind": "Pod"}, "object": pod})
        ),
        Outcome::Ignored
    );
    assert_eq!(
        review(
            json!({"uid": "2", "operation": "CREATE", "kind": {"group": "apps", "kind": "Deployment"}, "object": pod})
        ),
        Outcome::Ignored
    );
    // Pods whose spec cannot take a sidecar: no spec, no containers,
    // initContainers of the wrong type, a spec that is a string.
    for object in [
        json!(null),
        json!({"metadata": {}}),
        json!({"spec": {"containers": []}}),
        json!({"spec": {"containers": [{"name": "a"}], "initContainers": "x"}}),
        json!({"spec": "x"}),
    ] {
        assert_eq!(
            review(
                json!({"uid": "3", "operation": "CREATE", "kind": {"group": "", "kind": "Pod"}, "object": object})
            ),
            Outcome::InvalidPod
        );
    }
}

#[test]
fn host_network_skip_is_a_warning() {
    let webhook = Webhook::new(&native()).unwrap();
    let pod = json!({"metadata": {"generateName": "n-", "namespace": "x"}, "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "a"}]}});
    let answer = webhook.review(&review_of(&pod, "u")).unwrap();
    assert_eq!(answer.outcome, Outcome::HostNetwork);
    assert_eq!(answer.pod, "x/n-*");
    let warning = answer.body["response"]["warnings"][0].as_str().unwrap();
    assert!(warning.contains("hostNetwork"), "{warning}");
}

#[test]
fn bad_sidecar_settings_are_refused_at_start() {
    let opts = InjectOptions {
        image: "bad image".to_owned(),
        ..InjectOptions::default()
    };
    assert!(Webhook::new(&opts).is_err());
}

/// The container is the one `inject` writes, typed as JSON: numbers stay
/// numbers and quoted strings stay strings.
#[test]
fn container_json_is_typed() {
    let c = crate::inject::container_json(&native()).unwrap();
    assert_eq!(c["name"], "podpath");
    assert_eq!(c["ports"][0]["containerPort"], 9809);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW"])
    );
    assert!(c["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "PODPATH_LISTEN" && e["value"] == "[::]:9809"));
}

mod fail_open {
    use super::*;
    use proptest::prelude::*;

    /// A review whose pod is `pod`, as JSON text to mutate.
    fn review_text(which: usize) -> Vec<u8> {
        let docs = documents();
        let object = yaml_to_json(&docs[which % docs.len()]).unwrap();
        review_of(&pod_of(&object), "uid-p")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Byte mutations and truncations of real reviews: never a panic;
        /// every answer allows the pod, echoes the uid, and a patch it
        /// carries applies to the pod it was computed for.
        #[test]
        fn mutated_reviews(which in 0usize..16, cut in 0usize..4000, pos in 0usize..4000, byte in 0u8..=255) {
            let webhook = Webhook::new(&native()).unwrap();
            let mut bytes = review_text(which);
            let p = pos % bytes.len();
            bytes[p] = byte;
            bytes.truncate(cut.max(1).min(bytes.len()));
            if let Ok(answer) = webhook.review(&bytes) {
                let response = &answer.body["response"];
                prop_assert_eq!(&response["allowed"], &json!(true));
                prop_assert_eq!(response["uid"].as_str(), Some(answer.uid.as_str()));
                if let Some(patch) = response["patch"].as_str() {
                    let review: Value = serde_json::from_slice(&bytes).unwrap();
                    let mut pod = review["request"]["object"].clone();
                    let ops = base64::engine::general_purpose::STANDARD.decode(patch).unwrap();
                    let ops: json_patch::Patch = serde_json::from_slice(&ops).unwrap();
                    prop_assert!(json_patch::patch(&mut pod, &ops).is_ok());
                }
            }
        }
    }
}
