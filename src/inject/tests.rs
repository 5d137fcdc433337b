use super::tree::{parse_stream, Node, NodeKind};
use super::*;

const DEPLOYMENT: &str = r#"# The shop's web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      securityContext:
        runAsNonRoot: true
        fsGroup: 2000
      initContainers:
      - name: migrate
        image: registry.example/web-migrate:1.4
        args: ["--wait", "db:5432"]
      containers:
        - name: web
          image: registry.example/web:1.4   # pinned by release tooling
          env:
            - name: FEATURE_X
              value: "yes"
            - name: RETRIES
              value: "08"
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: config
              mountPath: /etc/web
        # the log shipper reads /var/log/web
        - name: shipper
          image: registry.example/shipper:2.0
          command:
            - /bin/sh
            - -c
            - |
              while true; do
                ship /var/log/web
              done

      volumes:
        - name: config
          configMap:
            name: web-config
            defaultMode: 0644
"#;

const CRONJOB: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
spec:
  schedule: "0 3 * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: registry.example/report:3
            args: ["--since", "24h"]
"#;

const MULTI: &str = r#"---
apiVersion: v1
kind: Service
metadata:
  name: demo-app
spec:
  selector:
    app: demo-app
  ports:
  - port: 80
    targetPort: 8080
---
# sidecar goes below
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
  - name: curl
    image: curlimages/curl:8.10.1
    command: ["sleep", "infinity"]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: "postgres:16"}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
spec:
  selector:
    matchLabels: {app: node-agent}
  template:
    metadata:
      labels: {app: node-agent}
    spec:
      hostNetwork: true
      containers:
      - name: agent
        image: registry.example/agent:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  enabled: "on"
  mode: "0755"
...
"#;

/// `kubectl get deploy -o yaml` style: sorted keys, indented sequences,
/// managedFields, status, and a last-applied annotation whose JSON mentions
/// containers.
const KUBECTL_GET: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  annotations:
    deployment.kubernetes.io/revision: "3"
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[{"image":"nginx:1.27","name":"nginx"}]}}}}
  creationTimestamp: "2026-11-20T10:00:00Z"
  generation: 3
  managedFields:
  - apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:spec:
        f:template:
          f:spec:
            f:containers:
              k:{"name":"nginx"}:
                .: {}
                f:image: {}
    manager: kubectl-client-side-apply
    operation: Update
  name: demo-app
  namespace: default
  uid: 0b7e0c1e-3f0a-4d1e-9a43-5c4d3e2f1a0b
spec:
  progressDeadlineSeconds: 600
  replicas: 1
  selector:
    matchLabels:
      app: demo-app
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: demo-app
    spec:
      containers:
      - image: nginx:1.27
        imagePullPolicy: IfNotPresent
        name: nginx
        ports:
        - containerPort: 80
          name: http
          protocol: TCP
        resources: {}
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
status:
  availableReplicas: 1
  conditions:
  - lastTransitionTime: "2026-11-20T10:00:05Z"
    message: Deployment has minimum availability.
    reason: MinimumReplicasAvailable
    status: "True"
    type: Available
  observedGeneration: 3
  readyReplicas: 1
  replicas: 1
"#;

fn native() -> InjectOptions {
    InjectOptions::default()
}

fn classic() -> InjectOptions {
    InjectOptions {
        native_sidecar: false,
        ..InjectOptions::default()
    }
}

fn docs(text: &str) -> Vec<Node> {
    parse_stream(text)
        .expect("test output parses")
        .into_iter()
        .flatten()
        .collect()
}

fn at<'a>(node: &'a Node, path: &[&str]) -> &'a Node {
    path.iter().fold(node, |n, key| {
        n.get(key).unwrap_or_else(|| panic!("missing key {key}"))
    })
}

fn names(list: &Node) -> Vec<String> {
    list.items()
        .expect("a sequence")
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// A structural rendering, independent of layout, flow/block style and
/// comments, for comparing YAML written in different shapes.
fn canonical(node: &Node) -> String {
    match &node.kind {
        NodeKind::Scalar { value, .. } => format!("{value:?}"),
        NodeKind::Seq(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        NodeKind::Map(entries) => {
            let mut inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", canonical(k), canonical(v)))
                .collect();
            inner.sort();
            format!("{{{}}}", inner.join(","))
        }
        NodeKind::Alias => "*".to_owned(),
    }
}

/// True when line `index` of `input` is not an `initContainers:` line, so an
/// output line there was inserted.
fn input_lacks_key_before(input: &str, index: usize) -> bool {
    input
        .lines()
        .nth(index)
        .is_none_or(|l| l.trim() != "initContainers:")
}

/// Asserts that `output` is `input` plus the lines of `block` inserted once
/// per injected pod spec, and returns how many were inserted.
fn inserted_blocks(input: &str, output: &str, block_first_line: &str) -> usize {
    let out_lines: Vec<&str> = output.lines().collect();
    let mut kept = Vec::new();
    let mut count = 0;
    let mut i = 0;
    while i < out_lines.len() {
        let line = out_lines[i];
        if line.trim_start() == block_first_line {
            count += 1;
            // `initContainers:` is added with the block when the key was missing.
            if kept
                .last()
                .is_some_and(|l: &&str| l.trim() == "initContainers:")
                && input_lacks_key_before(input, kept.len() - 1)
            {
                kept.pop();
            }
            let indent = line.len() - line.trim_start().len();
            i += 1;
            while i < out_lines.len() {
                let next = out_lines[i];
                let next_indent = next.len() - next.trim_start().len();
                if next_indent > indent && !next.trim().is_empty() {
                    i += 1;
                } else {
                    break;
                }
            }
            continue;
        }
        kept.push(line);
        i += 1;
    }
    let input_lines: Vec<&str> = input.lines().collect();
    assert_eq!(kept, input_lines, "only the sidecar's lines may be added");
    count
}

#[test]
fn native_sidecar_goes_first_among_init_containers() {
    let out = inject(DEPLOYMENT, &native()).expect("injects");
    let doc = &docs(&out)[0];
    let spec = at(doc, &["spec", "template", "spec"]);
    assert_eq!(names(at(spec, &["initContainers"])), ["podpath", "migrate"]);
    assert_eq!(names(at(spec, &["containers"])), ["web", "shipper"]);
    let podpath = &at(spec, &["initContainers"]).items().expect("seq")[0];
    assert_eq!(at(podpath, &["restartPolicy"]).as_str(), Some("Always"));
    assert_eq!(inserted_blocks(DEPLOYMENT, &out, "- name: podpath"), 1);
}

#[test]
fn everything_else_keeps_its_exact_text() {
    let out = inject(DEPLOYMENT, &native()).expect("injects");
    for kept in [
        "# The shop's web tier.",
        "image: registry.example/web:1.4   # pinned by release tooling",
        "value: \"yes\"",
        "value: \"08\"",
        "defaultMode: 0644",
        "# the log shipper reads /var/log/web",
        "drop: [ALL]",
    ] {
        assert!(out.contains(kept), "lost {kept:?}");
    }
    // The pod's own securityContext is not touched by the container's.
    let doc = &docs(&out)[0];
    let pod_sc = at(doc, &["spec", "template", "spec", "securityContext"]);
    assert_eq!(
        canonical(pod_sc),
        r#"{"fsGroup":"2000","runAsNonRoot":"true"}"#
    );
}

#[test]
fn classic_sidecar_goes_last_among_containers() {
    let out = inject(DEPLOYMENT, &classic()).expect("injects");
    let doc = &docs(&out)[0];
    let spec = at(doc, &["spec", "template", "spec"]);
    assert_eq!(
        names(at(spec, &["containers"])),
        ["web", "shipper", "podpath"]
    );
    assert_eq!(names(at(spec, &["initContainers"])), ["migrate"]);
    let podpath = &at(spec, &["containers"]).items().expect("seq")[2];
    assert!(podpath.get("restartPolicy").is_none());
    // The shipper's block scalar keeps its content.
    let shipper = &at(spec, &["containers"]).items().expect("seq")[1];
    let script = at(shipper, &["command"]).items().expect("seq")[2].as_str();
    assert_eq!(script, Some("while true; do\n  ship /var/log/web\ndone\n"));
    assert_eq!(inserted_blocks(DEPLOYMENT, &out, "- name: podpath"), 1);
}

#[test]
fn cronjob_pod_template_gets_the_sidecar() {
    for opts in [native(), classic()] {
        let out = inject(CRONJOB, &opts).expect("injects");
        let doc = &docs(&out)[0];
        let spec = at(doc, &["spec", "jobTemplate", "spec", "template", "spec"]);
        let all: Vec<String> = spec
            .get("initContainers")
            .map(names)
            .unwrap_or_default()
            .into_iter()
            .chain(names(at(spec, &["containers"])))
            .collect();
        assert!(all.contains(&"podpath".to_owned()), "{opts:?}: {all:?}");
        assert!(all.contains(&"report".to_owned()));
        assert_eq!(inserted_blocks(CRONJOB, &out, "- name: podpath"), 1);
    }
}

#[test]
fn native_without_init_containers_adds_the_key_before_containers() {
    let out = inject(CRONJOB, &native()).expect("injects");
    assert!(out.contains(
        "          restartPolicy: OnFailure\n          initContainers:\n          - name: podpath\n"
    ));
    let doc = &docs(&out)[0];
    let spec = at(doc, &["spec", "jobTemplate", "spec", "template", "spec"]);
    assert_eq!(names(at(spec, &["initContainers"])), ["podpath"]);
    assert_eq!(names(at(spec, &["containers"])), ["report"]);
}

#[test]
fn multi_document_stream_touches_only_workloads() {
    let out = inject(MULTI, &native()).expect("injects");
    let objects = docs(&out);
    assert_eq!(objects.len(), 5);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o.get("kind").and_then(Node::as_str).unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["Service", "Pod", "StatefulSet", "DaemonSet", "ConfigMap"]
    );
    assert_eq!(
        names(at(&objects[1], &["spec", "initContainers"])),
        ["podpath"]
    );
    assert_eq!(
        names(at(
            &objects[2],
            &["spec", "template", "spec", "initContainers"]
        )),
        ["podpath"]
    );
    // hostNetwork pods would capture the node's traffic: left alone.
    assert!(at(&objects[3], &["spec", "template", "spec"])
        .get("initContainers")
        .is_none());
    // Pod and StatefulSet, nothing else.
    assert_eq!(inserted_blocks(MULTI, &out, "- name: podpath"), 2);
    assert!(out.starts_with("---\napiVersion: v1\nkind: Service\n"));
    assert!(out.contains("---\n# sidecar goes below\napiVersion: v1\nkind: Pod\n"));
    assert!(out.ends_with("  enabled: \"on\"\n  mode: \"0755\"\n...\n"));
}

#[test]
fn kubectl_get_output_is_injected_in_both_forms() {
    for opts in [native(), classic()] {
        let out = inject(KUBECTL_GET, &opts).expect("injects");
        assert_eq!(inserted_blocks(KUBECTL_GET, &out, "- name: podpath"), 1);
        let doc = &docs(&out)[0];
        let spec = at(doc, &["spec", "template", "spec"]);
        let list = if opts.native_sidecar {
            "initContainers"
        } else {
            "containers"
        };
        assert!(
            names(at(spec, &[list])).contains(&"podpath".to_owned()),
            "{opts:?}"
        );
        // Keys after the containers sequence stay in the pod spec.
        assert_eq!(at(spec, &["dnsPolicy"]).as_str(), Some("ClusterFirst"));
        assert_eq!(
            at(spec, &["terminationGracePeriodSeconds"]).as_str(),
            Some("30")
        );
        assert_eq!(at(doc, &["status", "replicas"]).as_str(), Some("1"));
    }
}

#[test]
fn injecting_twice_equals_injecting_once() {
    for input in [DEPLOYMENT, CRONJOB, MULTI, KUBECTL_GET] {
        for opts in [native(), classic()] {
            let once = inject(input, &opts).expect("first");
            let twice = inject(&once, &opts).expect("second");
            assert_eq!(once, twice, "{opts:?}");
        }
        // An existing sidecar of the other form is kept, not doubled.
        let native_once = inject(input, &native()).expect("native");
        assert_eq!(
            inject(&native_once, &classic()).expect("classic"),
            native_once
        );
    }
}

#[test]
fn objects_without_pod_templates_are_returned_verbatim() {
    let input = "# nothing to do\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n---\n# only a comment\n";
    assert_eq!(inject(input, &native()).expect("ok"), input);
    assert_eq!(inject("", &native()).expect("ok"), "");
    // Same kind name, another API group: a custom resource, not a workload.
    let crd = "apiVersion: example.com/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n";
    assert_eq!(inject(crd, &native()).expect("ok"), crd);
}

#[test]
fn list_items_are_injected() {
    let input = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n  spec:\n    containers:\n    - name: app\n      image: nginx\n";
    let out = inject(input, &classic()).expect("ok");
    let doc = &docs(&out)[0];
    let pod = &at(doc, &["items"]).items().expect("seq")[0];
    assert_eq!(names(at(pod, &["spec", "containers"])), ["app", "podpath"]);
}

#[test]
fn empty_init_containers_are_replaced() {
    for value in ["[]", "null", ""] {
        let input = format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  initContainers: {value}\n  containers:\n  - name: app\n"
        );
        let out = inject(&input, &native()).expect("ok");
        let doc = &docs(&out)[0];
        assert_eq!(
            names(at(doc, &["spec", "initContainers"])),
            ["podpath"],
            "{value}"
        );
        assert_eq!(names(at(doc, &["spec", "containers"])), ["app"]);
    }
}

#[test]
fn last_container_without_trailing_newline() {
    let input = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: app\n    image: nginx";
    let out = inject(input, &classic()).expect("ok");
    let doc = &docs(&out)[0];
    assert_eq!(names(at(doc, &["spec", "containers"])), ["app", "podpath"]);
    assert!(out.starts_with(input));
}

#[test]
fn crlf_input_keeps_crlf() {
    let input = CRONJOB.replace('\n', "\r\n");
    let out = inject(&input, &native()).expect("ok");
    assert!(
        !out.replace("\r\n", "").contains('\n'),
        "a bare LF slipped in"
    );
    let doc = &docs(&out)[0];
    let spec = at(doc, &["spec", "jobTemplate", "spec", "template", "spec"]);
    assert_eq!(names(at(spec, &["initContainers"])), ["podpath"]);
}

#[test]
fn invalid_yaml_is_an_error_with_a_position() {
    let err = inject("apiVersion: v1\nkind: Pod\nspec: [\n", &native()).unwrap_err();
    assert!(matches!(err, InjectError::Yaml { .. }), "{err:?}");
    let err = inject("a: b\n  c: d\n", &native()).unwrap_err();
    assert!(matches!(err, InjectError::Yaml { line: 2, .. }), "{err:?}");
}

#[test]
fn flow_style_pod_spec_is_refused_not_corrupted() {
    let input =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app}]}\n";
    for opts in [native(), classic()] {
        let err = inject(input, &opts).unwrap_err();
        assert!(
            matches!(&err, InjectError::Unsupported { kind, name, .. } if kind == "Pod" && name == "p"),
            "{err:?}"
        );
    }
}

#[test]
fn pod_without_containers_is_an_error() {
    let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  nodeName: n1\n";
    assert!(matches!(
        inject(input, &native()),
        Err(InjectError::Unsupported { .. })
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let flow = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let block = format!("{}1\n", "- ".repeat(10_000));
    // saphyr's scanner has its own limit for flow nesting.
    let result = inject(&flow, &native());
    assert!(
        matches!(
            result,
            Err(InjectError::Yaml { .. } | InjectError::TooDeep { .. })
        ),
        "{result:?}"
    );
    let result = inject(&block, &native());
    assert!(
        matches!(result, Err(InjectError::TooDeep { .. })),
        "{result:?}"
    );
}

#[test]
fn bad_options_are_refused() {
    let opts = InjectOptions {
        image: "evil\n  privileged: true".to_owned(),
        ..InjectOptions::default()
    };
    assert!(matches!(
        inject(CRONJOB, &opts),
        Err(InjectError::InvalidImage(_))
    ));
    let opts = InjectOptions {
        metrics_port: 0,
        ..InjectOptions::default()
    };
    assert_eq!(inject(CRONJOB, &opts), Err(InjectError::InvalidPort));
}

#[test]
fn options_reach_the_container() {
    let opts = InjectOptions {
        image: "registry.example/podpath@sha256:abc123".to_owned(),
        native_sidecar: true,
        metrics_port: 9900,
    };
    let out = inject(CRONJOB, &opts).expect("ok");
    let doc = &docs(&out)[0];
    let spec = at(doc, &["spec", "jobTemplate", "spec", "template", "spec"]);
    let c = &at(spec, &["initContainers"]).items().expect("seq")[0];
    assert_eq!(at(c, &["image"]).as_str(), Some(opts.image.as_str()));
    let port = &at(c, &["ports"]).items().expect("seq")[0];
    assert_eq!(at(port, &["containerPort"]).as_str(), Some("9900"));
    assert_eq!(at(port, &["name"]).as_str(), Some(METRICS_PORT_NAME));
    let sc = at(c, &["securityContext"]);
    assert_eq!(
        canonical(at(sc, &["capabilities"])),
        r#"{"add":["NET_RAW"],"drop":["ALL"]}"#
    );
    assert_eq!(at(sc, &["runAsUser"]).as_str(), Some("65532"));
}

/// The kustomize components in deploy/sidecar/ and `inject` must add the same
/// container.
#[test]
fn kustomize_components_match_inject() {
    let cases = [
        (
            include_str!("../../deploy/sidecar/podpath-native.yaml"),
            &["spec", "template", "spec", "initContainers"][..],
            true,
        ),
        (
            include_str!("../../deploy/sidecar/podpath-native-cronjob.yaml"),
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "initContainers",
            ][..],
            true,
        ),
        (
            include_str!("../../deploy/sidecar/classic/podpath-classic.yaml"),
            &[][..],
            false,
        ),
        (
            include_str!("../../deploy/sidecar/classic/podpath-classic-cronjob.yaml"),
            &[][..],
            false,
        ),
    ];
    for (patch, path, native_sidecar) in cases {
        let patch_doc = &docs(patch)[0];
        // Native: a strategic-merge patch whose list holds the container.
        // Classic: a JSON patch whose single `add` operation carries it.
        let from_patch = if native_sidecar {
            &at(patch_doc, path).items().expect("seq")[0]
        } else {
            at(&patch_doc.items().expect("json patch")[0], &["value"])
        };
        let opts = InjectOptions {
            image: at(from_patch, &["image"])
                .as_str()
                .expect("image")
                .to_owned(),
            native_sidecar,
            metrics_port: DEFAULT_METRICS_PORT,
        };
        let out = inject(CRONJOB, &opts).expect("ok");
        let doc = &docs(&out)[0];
        let spec = at(doc, &["spec", "jobTemplate", "spec", "template", "spec"]);
        let list = if native_sidecar {
            "initContainers"
        } else {
            "containers"
        };
        let injected = at(spec, &[list])
            .items()
            .expect("seq")
            .iter()
            .find(|c| c.get("name").and_then(Node::as_str) == Some(CONTAINER_NAME))
            .expect("podpath container");
        assert_eq!(canonical(injected), canonical(from_patch), "{path:?}");
    }
}

/// An observer must never make the app's pod unready: no readiness or
/// startup probe on the sidecar (a native sidecar is "started" as soon as
/// it runs), liveness only on `/healthz` (200 while the process serves,
/// whatever capture does), and a dual-stack listener so the probe reaches
/// it on IPv6-only clusters.
#[test]
fn the_sidecar_has_no_probe_that_can_make_the_pod_unready() {
    for native_sidecar in [true, false] {
        let opts = InjectOptions {
            native_sidecar,
            ..InjectOptions::default()
        };
        let out = inject(CRONJOB, &opts).expect("ok");
        let doc = &docs(&out)[0];
        let spec = at(doc, &["spec", "jobTemplate", "spec", "template", "spec"]);
        let list = if native_sidecar {
            "initContainers"
        } else {
            "containers"
        };
        let c = at(spec, &[list])
            .items()
            .expect("seq")
            .iter()
            .find(|c| c.get("name").and_then(Node::as_str) == Some(CONTAINER_NAME))
            .expect("podpath container");
        assert!(c.get("readinessProbe").is_none(), "{out}");
        assert!(c.get("startupProbe").is_none(), "{out}");
        assert_eq!(
            at(c, &["livenessProbe", "httpGet", "path"]).as_str(),
            Some("/healthz")
        );
        let listen = at(c, &["env"])
            .items()
            .expect("env")
            .iter()
            .find(|e| e.get("name").and_then(Node::as_str) == Some("PODPATH_LISTEN"))
            .and_then(|e| e.get("value"))
            .and_then(Node::as_str);
        assert_eq!(listen, Some("[::]:9809"));
    }
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text(input in "\\PC{0,400}") {
            let _ = inject(&input, &InjectOptions::default());
        }

        /// Truncations and single-byte mutations of realistic manifests.
        #[test]
        fn mutated_manifests(which in 0usize..4, cut in 0usize..2000, pos in 0usize..2000, byte in 0u8..128) {
            let base = [DEPLOYMENT, CRONJOB, MULTI, KUBECTL_GET][which];
            let mut bytes = base.as_bytes().to_vec();
            let p = pos % bytes.len();
            bytes[p] = byte;
            bytes.truncate(cut.min(bytes.len()));
            let text = String::from_utf8_lossy(&bytes);
            for opts in [native(), classic()] {
                if let Ok(once) = inject(&text, &opts) {
                    // Whatever was accepted must stay valid YAML and be
                    // stable under a second injection.
                    let twice = inject(&once, &opts);
                    prop_assert_eq!(twice.as_deref(), Ok(once.as_str()));
                }
            }
        }
    }
}
