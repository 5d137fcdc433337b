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

/// Asserts that `output` is `input` plus, per injected pod spec, the lines of
/// the sidecar block (starting with `block_first_line`) and the version
/// annotation, with the `initContainers:`, `metadata:` and `annotations:`
/// keys they needed, and returns how many sidecar blocks were inserted.
fn inserted_blocks(input: &str, output: &str, block_first_line: &str) -> usize {
    let annotation = format!("{VERSION_ANNOTATION}: \"{VERSION}\"");
    // Flow-style metadata gets the annotation inside its braces.
    let flow_forms = [
        format!(", annotations: {{{annotation}}}"),
        format!("annotations: {{{annotation}}}"),
        format!(", {annotation}"),
        annotation.clone(),
    ];
    let out_lines: Vec<String> = output
        .lines()
        .map(|l| {
            if l.trim_start() == annotation {
                return l.to_owned();
            }
            flow_forms.iter().fold(l.to_owned(), |line, form| {
                line.replacen(form.as_str(), "", 1)
            })
        })
        .collect();
    let input_lines: Vec<&str> = input.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    // Drops the key lines just added before an inserted line: those that
    // the input does not have at that position.
    let pop_added_keys = |kept: &mut Vec<&str>| {
        while kept.last().is_some_and(|l| {
            matches!(l.trim(), "initContainers:" | "metadata:" | "annotations:")
                && input_lines.get(kept.len() - 1) != Some(l)
        }) {
            kept.pop();
        }
    };
    let mut count = 0;
    let mut i = 0;
    while i < out_lines.len() {
        let line = out_lines[i].as_str();
        if line.trim_start() == annotation {
            pop_added_keys(&mut kept);
            i += 1;
            continue;
        }
        if line.trim_start() == block_first_line {
            count += 1;
            pop_added_keys(&mut kept);
            let indent = line.len() - line.trim_start().len();
            i += 1;
            while i < out_lines.len() {
                let next = &out_lines[i];
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
    let input = "# nothing to do\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n---\n# only a comment\n---\n";
    let injection = report(input, &native(), Selection::AllButOptedOut);
    assert_eq!(injection.output, input);
    // Empty documents are no objects.
    assert_eq!(outcomes(&injection), ["Service s: NoPodTemplate"]);
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
    assert_eq!(inserted_blocks(input, &out, "- name: podpath"), 1);
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
    // Re-running and upgrading keep CRLF too.
    assert_eq!(inject(&out, &native()).expect("again"), out);
    let new = InjectOptions {
        image: "podpath:9".to_owned(),
        ..native()
    };
    let upgraded = inject(&out, &new).expect("upgrade");
    assert!(!upgraded.replace("\r\n", "").contains('\n'));
    assert_eq!(
        upgraded,
        out.replace(&format!("image: {DEFAULT_IMAGE}"), "image: podpath:9")
    );
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

const INGRESS_NGINX: &str = include_str!("../../ci/testdata/inject/ingress-nginx.yaml");
const ARGO_CD: &str = include_str!("../../ci/testdata/inject/argo-cd.yaml");
const NODE_EXPORTER: &str = include_str!("../../ci/testdata/inject/node-exporter.yaml");
const BLACKBOX_EXPORTER: &str = include_str!("../../ci/testdata/inject/blackbox-exporter.yaml");

fn report(input: &str, opts: &InjectOptions, selection: Selection) -> Injection {
    inject_report(input, opts, selection).expect("injects")
}

/// `kind name: what happened`, for comparing outcomes in one assertion.
fn outcomes(injection: &Injection) -> Vec<String> {
    injection
        .outcomes
        .iter()
        .map(|o| {
            let what = match &o.action {
                Action::Injected => "injected".to_owned(),
                Action::Upgraded { .. } => "upgraded".to_owned(),
                Action::Skipped(skip) => format!("{skip:?}"),
            };
            format!("{} {}: {what}", o.kind, o.name)
        })
        .collect()
}

/// The text of a Kubernetes object of `kind` whose pod spec has `extra`
/// (lines at the pod spec's indentation) and whose template metadata has
/// `template_meta` lines.
fn deployment(labels: &str, template_meta: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\n{labels}\
         spec:\n  template:\n    metadata:\n      labels:\n        app: web\n{template_meta}\
         \x20   spec:\n{extra}      containers:\n      - name: web\n        image: nginx\n"
    )
}

#[test]
fn real_install_manifests_inject_exactly_their_workloads() {
    let no_template = "NoPodTemplate";
    let cases: [(&str, Vec<String>); 4] = [
        (
            INGRESS_NGINX,
            [
                ("Namespace ingress-nginx", no_template),
                ("ServiceAccount ingress-nginx", no_template),
                ("ServiceAccount ingress-nginx-admission", no_template),
                ("Role ingress-nginx", no_template),
                ("ConfigMap ingress-nginx-controller", no_template),
                ("Service ingress-nginx-controller", no_template),
                ("Service ingress-nginx-controller-admission", no_template),
                ("Deployment ingress-nginx-controller", "injected"),
                ("Job ingress-nginx-admission-create", "injected"),
                ("Job ingress-nginx-admission-patch", "injected"),
                ("IngressClass nginx", no_template),
                (
                    "ValidatingWebhookConfiguration ingress-nginx-admission",
                    no_template,
                ),
            ]
            .map(|(o, w)| format!("{o}: {w}"))
            .to_vec(),
        ),
        (
            ARGO_CD,
            [
                ("Service argocd-redis", no_template),
                ("Deployment argocd-dex-server", "injected"),
                ("Deployment argocd-redis", "injected"),
                ("Deployment argocd-repo-server", "injected"),
                ("StatefulSet argocd-application-controller", "injected"),
                (
                    "NetworkPolicy argocd-application-controller-network-policy",
                    no_template,
                ),
            ]
            .map(|(o, w)| format!("{o}: {w}"))
            .to_vec(),
        ),
        (
            NODE_EXPORTER,
            vec!["DaemonSet node-exporter: HostNetwork".to_owned()],
        ),
        (
            BLACKBOX_EXPORTER,
            vec!["Deployment blackbox-exporter: injected".to_owned()],
        ),
    ];
    for (input, expected) in cases {
        for opts in [native(), classic()] {
            let once = report(input, &opts, Selection::AllButOptedOut);
            assert_eq!(outcomes(&once), expected, "{opts:?}");
            let injected = expected.iter().filter(|o| o.ends_with("injected")).count();
            // Only the sidecars and the version annotations were added.
            assert_eq!(
                inserted_blocks(input, &once.output, "- name: podpath"),
                injected
            );
            assert_eq!(
                once.output.matches(VERSION_ANNOTATION).count(),
                injected,
                "one annotation per injected template"
            );
            // Every injected pod spec has exactly one podpath container, in
            // the form asked for, first among the init containers.
            for doc in docs(&once.output) {
                let Some(spec) = doc
                    .get("spec")
                    .and_then(|s| s.get("template"))
                    .and_then(|t| t.get("spec"))
                else {
                    continue;
                };
                if spec.get("hostNetwork").is_some() {
                    assert!(!names(at(spec, &["containers"])).contains(&"podpath".to_owned()));
                    continue;
                }
                let list = if opts.native_sidecar {
                    names(at(spec, &["initContainers"]))
                } else {
                    names(at(spec, &["containers"]))
                };
                let at_index = if opts.native_sidecar {
                    0
                } else {
                    list.len() - 1
                };
                assert_eq!(list[at_index], "podpath", "{list:?}");
                assert_eq!(list.iter().filter(|n| *n == "podpath").count(), 1);
            }
            // Idempotent, byte for byte, and it says why nothing changed.
            let twice = report(&once.output, &opts, Selection::AllButOptedOut);
            assert_eq!(twice.output, once.output, "{opts:?}");
            let current: Vec<String> = expected
                .iter()
                .map(|o| o.replace(": injected", ": AlreadyCurrent"))
                .collect();
            assert_eq!(outcomes(&twice), current);
        }
    }
}

#[test]
fn node_exporter_skip_is_reported_with_its_reason() {
    let injection = report(NODE_EXPORTER, &native(), Selection::AllButOptedOut);
    assert_eq!(injection.output, NODE_EXPORTER);
    assert_eq!(
        injection.outcomes[0].to_string(),
        "skipped DaemonSet monitoring/node-exporter (line 4): hostNetwork is true: podpath \
         would capture the node's traffic, not the pod's"
    );
}

#[test]
fn a_new_image_upgrades_the_sidecar_in_place() {
    for opts in [native(), classic()] {
        let once = inject(INGRESS_NGINX, &opts).expect("once");
        let new = InjectOptions {
            image: "registry.example/podpath:9.9.9".to_owned(),
            ..opts.clone()
        };
        let upgraded = report(&once, &new, Selection::AllButOptedOut);
        // Only the three image lines changed.
        let changed: Vec<(&str, &str)> = once
            .lines()
            .zip(upgraded.output.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(once.lines().count(), upgraded.output.lines().count());
        assert_eq!(changed.len(), 3, "{changed:?}");
        for (old, new_line) in changed {
            assert_eq!(old.trim(), format!("image: {DEFAULT_IMAGE}"));
            assert_eq!(new_line.trim(), "image: registry.example/podpath:9.9.9");
        }
        let upgrades: Vec<&Action> = upgraded
            .outcomes
            .iter()
            .map(|o| &o.action)
            .filter(|a| !matches!(a, Action::Skipped(Skip::NoPodTemplate)))
            .collect();
        assert_eq!(upgrades.len(), 3);
        for action in upgrades {
            assert_eq!(
                action,
                &Action::Upgraded {
                    from_version: VERSION.to_owned(),
                    from_image: Some(DEFAULT_IMAGE.to_owned()),
                    to_image: new.image.clone(),
                }
            );
        }
        assert!(upgraded.outcomes.iter().any(|o| o.to_string()
            == format!(
                "upgraded Deployment ingress-nginx/ingress-nginx-controller (line 138): image \
                 {DEFAULT_IMAGE} → registry.example/podpath:9.9.9"
            )));
        // Again with the same image: nothing to do.
        let again = report(&upgraded.output, &new, Selection::AllButOptedOut);
        assert_eq!(again.output, upgraded.output);
        assert!(again.outcomes.iter().all(|o| matches!(
            o.action,
            Action::Skipped(Skip::AlreadyCurrent | Skip::NoPodTemplate)
        )));
    }
}

fn new_image() -> InjectOptions {
    InjectOptions {
        image: "registry.example/podpath:9.9.9".to_owned(),
        ..native()
    }
}

/// `text` with the first `from` replaced by `to`; `from` must be there, so a
/// change to the sidecar template fails the test instead of emptying it.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the text");
    text.replacen(from, to, 1)
}

#[test]
fn an_older_podpath_sidecar_is_rewritten_to_the_current_template() {
    // What an older podpath might have written: another version, another
    // log format, a field since dropped.
    let once = inject(CRONJOB, &native()).expect("once");
    let old = edit(
        &once,
        &format!("{VERSION_ANNOTATION}: \"{VERSION}\""),
        &format!("{VERSION_ANNOTATION}: \"0.0.9\""),
    );
    let old = edit(&old, "value: json", "value: text");
    let old = edit(
        &old,
        "\n            ports:\n",
        "\n            workingDir: /tmp\n            ports:\n",
    );
    let upgraded = report(&old, &native(), Selection::AllButOptedOut);
    assert_eq!(
        upgraded.output, once,
        "back to exactly what inject writes now"
    );
    assert_eq!(
        upgraded.outcomes[0].action,
        Action::Upgraded {
            from_version: "0.0.9".to_owned(),
            from_image: Some(DEFAULT_IMAGE.to_owned()),
            to_image: DEFAULT_IMAGE.to_owned(),
        }
    );
    assert_eq!(
        upgraded.outcomes[0].to_string(),
        format!("upgraded CronJob nightly-report (line 1): podpath 0.0.9 → {VERSION}")
    );
    // The same version but a container edited since: rewritten too, and
    // reported as such.
    let edited = edit(&once, "value: json", "value: text");
    let again = report(&edited, &native(), Selection::AllButOptedOut);
    assert_eq!(again.output, once);
    assert_eq!(
        again.outcomes[0].to_string(),
        "upgraded CronJob nightly-report (line 1): sidecar options changed"
    );
}

#[test]
fn a_sidecar_read_back_from_the_cluster_is_current() {
    // `kubectl get -o yaml` returns the container with defaults filled in and
    // `args` as a block sequence: still current, left untouched.
    let once = inject(CRONJOB, &native()).expect("once");
    let from_cluster = edit(
        &once,
        "args: [\"run\"]\n",
        "args:\n            - run\n            imagePullPolicy: IfNotPresent\n            terminationMessagePath: /dev/termination-log\n",
    );
    let from_cluster = edit(
        &from_cluster,
        "path: /healthz\n",
        "path: /healthz\n                scheme: HTTP\n",
    );
    let from_cluster = edit(
        &from_cluster,
        "fieldPath: status.podIP\n",
        "fieldPath: status.podIP\n                  apiVersion: v1\n",
    );
    let again = report(&from_cluster, &native(), Selection::AllButOptedOut);
    assert_eq!(again.output, from_cluster);
    assert_eq!(
        again.outcomes[0].action,
        Action::Skipped(Skip::AlreadyCurrent)
    );
    // An upgrade from there still replaces the whole item.
    let new = InjectOptions {
        image: "podpath:9".to_owned(),
        ..native()
    };
    let upgraded = inject(&from_cluster, &new).expect("upgrade");
    assert_eq!(upgraded, inject(&once, &new).expect("upgrade"));
}

#[test]
fn an_existing_sidecar_keeps_its_form() {
    let native_once = inject(DEPLOYMENT, &native()).expect("native");
    let as_classic = report(&native_once, &classic(), Selection::AllButOptedOut);
    assert_eq!(as_classic.output, native_once);
    assert_eq!(
        as_classic.outcomes[0].action,
        Action::Skipped(Skip::AlreadyCurrent)
    );
    // An upgrade rewrites it where it is.
    let new = InjectOptions {
        image: "podpath:9".to_owned(),
        ..classic()
    };
    let upgraded = inject(&native_once, &new).expect("upgrade");
    let doc = &docs(&upgraded)[0];
    let spec = at(doc, &["spec", "template", "spec"]);
    assert_eq!(names(at(spec, &["initContainers"])), ["podpath", "migrate"]);
    assert_eq!(names(at(spec, &["containers"])), ["web", "shipper"]);
    let podpath = &at(spec, &["initContainers"]).items().expect("seq")[0];
    assert_eq!(at(podpath, &["image"]).as_str(), Some("podpath:9"));
    assert_eq!(at(podpath, &["restartPolicy"]).as_str(), Some("Always"));
}

#[test]
fn a_podpath_container_inject_did_not_add_is_left_alone() {
    // What the kustomize component produces: the container, no annotation.
    let input = deployment(
        "",
        "",
        "      initContainers:\n      - name: podpath\n        image: registry.example/podpath:0.0.1\n",
    );
    let injection = report(&input, &native(), Selection::AllButOptedOut);
    assert_eq!(injection.output, input);
    assert_eq!(
        injection.outcomes[0].action,
        Action::Skipped(Skip::NotInjectedByPodpath)
    );
    assert!(injection.outcomes[0]
        .to_string()
        .contains("no podpath.io/injected-version annotation"));
}

#[test]
fn opt_out_by_label_or_annotation_on_object_or_template() {
    let cases = [
        (
            deployment("    podpath.io/inject: disabled\n", "", ""),
            "the object's labels",
        ),
        (
            deployment(
                "",
                "      annotations:\n        podpath.io/inject: \"disabled\"\n",
                "",
            ),
            "the pod template's annotations",
        ),
        (
            deployment("", "        podpath.io/inject: disabled\n", ""),
            "the pod template's labels",
        ),
        // An opt-out wins over an opt-in elsewhere.
        (
            deployment(
                "    podpath.io/inject: enabled\n",
                "      annotations:\n        podpath.io/inject: disabled\n",
                "",
            ),
            "the pod template's annotations",
        ),
    ];
    for (input, at) in cases {
        for selection in [Selection::AllButOptedOut, Selection::OptedIn] {
            let injection = report(&input, &native(), selection);
            assert_eq!(injection.output, input, "{at}");
            assert_eq!(
                injection.outcomes[0].action,
                Action::Skipped(Skip::OptedOut { at }),
                "{input}"
            );
        }
    }
    // Opted out after inject added the sidecar: left, and said so.
    let once = inject(&deployment("", "", ""), &native()).expect("once");
    let opted_out = edit(
        &once,
        "    app: web\n",
        "    app: web\n    podpath.io/inject: disabled\n",
    );
    let injection = report(&opted_out, &new_image(), Selection::AllButOptedOut);
    assert_eq!(injection.output, opted_out);
    assert_eq!(
        injection.outcomes[0].action,
        Action::Skipped(Skip::OptedOutWithSidecar {
            at: "the object's labels"
        })
    );
    // A Pod is its own template: its metadata is read once.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    podpath.io/inject: disabled\nspec:\n  containers:\n  - name: a\n";
    assert_eq!(
        report(pod, &native(), Selection::AllButOptedOut).outcomes[0].action,
        Action::Skipped(Skip::OptedOut {
            at: "the object's annotations"
        })
    );
}

#[test]
fn opt_in_selects_what_the_kustomize_components_select() {
    // deploy/examples/app: two workloads labelled podpath.io/inject=enabled,
    // one not; the components inject the two (ci/packaging.sh checks that).
    let input = include_str!("../../deploy/examples/app/workloads.yaml");
    let opted_in = report(input, &native(), Selection::OptedIn);
    let injected: Vec<&str> = opted_in
        .outcomes
        .iter()
        .filter(|o| o.action == Action::Injected)
        .map(|o| o.name.as_str())
        .collect();
    let not_opted_in: Vec<&str> = opted_in
        .outcomes
        .iter()
        .filter(|o| o.action == Action::Skipped(Skip::NotOptedIn))
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(injected.len(), 2, "{:?}", outcomes(&opted_in));
    assert_eq!(not_opted_in.len(), 1, "{:?}", outcomes(&opted_in));
    assert_eq!(
        inserted_blocks(input, &opted_in.output, "- name: podpath"),
        2
    );
    // Without --opt-in all three get it.
    let all = report(input, &native(), Selection::AllButOptedOut);
    assert_eq!(inserted_blocks(input, &all.output, "- name: podpath"), 3);
    // The opt-in may also sit on the pod template (where a webhook sees it).
    let on_template = deployment(
        "",
        "      annotations:\n        podpath.io/inject: enabled\n",
        "",
    );
    assert_eq!(
        report(&on_template, &native(), Selection::OptedIn).outcomes[0].action,
        Action::Injected
    );
}

#[test]
fn an_unknown_inject_value_is_skipped_with_its_value() {
    let input = deployment("    podpath.io/inject: \"true\"\n", "", "");
    let injection = report(&input, &native(), Selection::AllButOptedOut);
    assert_eq!(injection.output, input);
    assert_eq!(
        injection.outcomes[0].action,
        Action::Skipped(Skip::UnknownChoice {
            value: "true".to_owned(),
            at: "the object's labels"
        })
    );
}

#[test]
fn host_network_is_read_as_kubernetes_reads_yaml() {
    // go-yaml v2's YAML 1.1 booleans, as sigs.k8s.io/yaml resolves them for
    // kubectl and the API server.
    for value in [
        "true",
        "True",
        "TRUE",
        "yes",
        "Yes",
        "YES",
        "y",
        "Y",
        "on",
        "On",
        "ON",
        "!!bool yes",
        "!!bool \"on\"",
    ] {
        let input = deployment("", "", &format!("      hostNetwork: {value}\n"));
        let injection = report(&input, &native(), Selection::AllButOptedOut);
        assert_eq!(injection.output, input, "{value}");
        assert_eq!(
            injection.outcomes[0].action,
            Action::Skipped(Skip::HostNetwork),
            "{value}"
        );
    }
    for value in [
        "false", "False", "no", "No", "n", "off", "OFF", "null", "~", "",
    ] {
        let input = deployment("", "", &format!("      hostNetwork: {value}\n"));
        let injection = report(&input, &native(), Selection::AllButOptedOut);
        assert_eq!(injection.outcomes[0].action, Action::Injected, "{value}");
    }
    // Quoted or `!!str`: a string, which the API server rejects for a bool.
    for value in ["\"true\"", "'yes'", "!!str on"] {
        let input = deployment("", "", &format!("      hostNetwork: {value}\n"));
        let injection = report(&input, &native(), Selection::AllButOptedOut);
        assert_eq!(injection.output, input, "{value}");
        assert!(
            matches!(
                injection.outcomes[0].action,
                Action::Skipped(Skip::HostNetworkNotBool { .. })
            ),
            "{value}"
        );
    }
    // An alias reads as the anchored scalar.
    let input = deployment(
        "    node-level: &host yes\n",
        "",
        "      hostNetwork: *host\n",
    );
    assert_eq!(
        report(&input, &native(), Selection::AllButOptedOut).outcomes[0].action,
        Action::Skipped(Skip::HostNetwork)
    );
    // A duplicated key: the last one counts, as in go-yaml.
    let input = deployment("", "", "      hostNetwork: false\n      hostNetwork: yes\n");
    assert_eq!(
        report(&input, &native(), Selection::AllButOptedOut).outcomes[0].action,
        Action::Skipped(Skip::HostNetwork)
    );
}

#[test]
fn unknown_kinds_with_containers_are_reported() {
    let input = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n---\napiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata:\n  name: old\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: patch\nspec:\n  replicas: 3\n---\n# A CRD's schema names containers, but holds none.\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: rollouts.argoproj.io\nspec:\n  versions:\n  - schema:\n      openAPIV3Schema:\n        properties:\n          containers:\n            type: array\n";
    let injection = report(input, &native(), Selection::AllButOptedOut);
    assert_eq!(injection.output, input);
    assert_eq!(
        outcomes(&injection),
        [
            "Rollout web: UnknownKind { api_version: \"argoproj.io/v1alpha1\", kind: \"Rollout\" }",
            "DaemonSet old: UnknownKind { api_version: \"extensions/v1beta1\", kind: \"DaemonSet\" }",
            "Deployment patch: NoPodSpec { path: \"spec.template.spec\" }",
            "CustomResourceDefinition rollouts.argoproj.io: NoPodTemplate",
        ]
    );
    assert_eq!(
        injection.outcomes[0].to_string(),
        "skipped Rollout web (line 1): argoproj.io/v1alpha1 Rollout is not a workload kind \
         inject knows: its containers are left as they are"
    );
}

#[test]
fn a_comment_on_empty_init_containers_is_kept() {
    for (value, expected) in [
        (
            "[]  # filled by the mesh",
            "  initContainers: # filled by the mesh\n  - name: podpath\n",
        ),
        (
            "[ ] # none yet",
            "  initContainers: # none yet\n  - name: podpath\n",
        ),
        (
            "null # none yet",
            "  initContainers: # none yet\n  - name: podpath\n",
        ),
        (
            "# none yet",
            "  initContainers: # none yet\n  - name: podpath\n",
        ),
        ("[]", "  initContainers:\n  - name: podpath\n"),
    ] {
        let input = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  initContainers: {value}\n  containers:\n  - name: app\n"
        );
        let out = inject(&input, &native()).expect("ok");
        assert!(out.contains(expected), "{value}: {out}");
        let doc = &docs(&out)[0];
        assert_eq!(names(at(doc, &["spec", "initContainers"])), ["podpath"]);
        assert_eq!(inject(&out, &native()).expect("again"), out);
    }
}

#[test]
fn the_version_is_recorded_in_every_metadata_shape() {
    let cases = [
        // No template metadata: a CronJob's template.
        (CRONJOB, &["spec", "jobTemplate", "spec", "template"][..]),
        // Flow-style template metadata.
        (MULTI, &["spec", "template"][..]),
        // Existing annotations, kubectl style.
        (KUBECTL_GET, &["spec", "template"][..]),
    ];
    for (input, template) in cases {
        let out = inject(input, &native()).expect("ok");
        let doc = docs(&out)
            .into_iter()
            .find(|d| {
                let has_template = template
                    .iter()
                    .try_fold(d, |n, k| n.get(k))
                    .is_some_and(|t| t.get("spec").is_some());
                has_template && d.get("kind").and_then(Node::as_str) != Some("DaemonSet")
            })
            .expect("a workload");
        let annotations = at(&doc, template)
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .expect("annotations");
        assert_eq!(
            at(annotations, &[VERSION_ANNOTATION]).as_str(),
            Some(VERSION),
            "{input}"
        );
    }
    // Empty `annotations:` or `metadata:` (Helm renders them), a stale or
    // empty recorded version, a template whose sidecar was removed.
    for (template_meta, expected) in [
        (
            "      annotations:\n",
            format!("      annotations:\n        {VERSION_ANNOTATION}: \"{VERSION}\"\n"),
        ),
        (
            "      annotations: ~  # none\n",
            format!("      annotations: # none\n        {VERSION_ANNOTATION}: \"{VERSION}\"\n"),
        ),
        (
            &format!("      annotations:\n        {VERSION_ANNOTATION}: \"0.0.1\"\n"),
            format!("      annotations:\n        {VERSION_ANNOTATION}: \"{VERSION}\"\n"),
        ),
        (
            &format!("      annotations:\n        {VERSION_ANNOTATION}:\n"),
            format!("      annotations:\n        {VERSION_ANNOTATION}: \"{VERSION}\"\n"),
        ),
    ] {
        let input = deployment("", template_meta, "");
        let out = inject(&input, &native()).expect("ok");
        assert!(out.contains(&expected), "{template_meta:?}: {out}");
        assert_eq!(inject(&out, &native()).expect("again"), out);
        let doc = &docs(&out)[0];
        assert_eq!(
            names(at(doc, &["spec", "template", "spec", "initContainers"])),
            ["podpath"]
        );
    }
    let input = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    metadata:\n    spec:\n      containers:\n      - name: a\n";
    let out = inject(input, &native()).expect("ok");
    assert!(out.contains(&format!(
        "    metadata:\n      annotations:\n        {VERSION_ANNOTATION}: \"{VERSION}\"\n    spec:\n"
    )));
    assert_eq!(inject(&out, &native()).expect("again"), out);

    let out = inject(MULTI, &native()).expect("ok");
    assert!(out.contains(&format!(
        "    metadata: {{labels: {{app: db}}, annotations: {{{VERSION_ANNOTATION}: \"{VERSION}\"}}}}\n"
    )));
}

#[test]
fn aliases_copy_a_bounded_amount_of_text() {
    // Each alias of a scalar copies it; past 1 MiB in all they stay
    // unresolved, so a short input cannot make the tree huge.
    let long = "x".repeat(300_000);
    let mut text = format!("a: &long {long}\nlist:\n");
    for _ in 0..100 {
        text.push_str("- *long\n");
    }
    let doc = &docs(&text)[0];
    let items = at(doc, &["list"]).items().expect("seq");
    let resolved = items
        .iter()
        .filter(|n| n.as_str().is_some_and(|v| v.len() == long.len()))
        .count();
    assert_eq!(resolved, 3);
    assert!(items[3..].iter().all(|n| matches!(n.kind, NodeKind::Alias)));
}

/// The image reference is one setting: the components' `images:` entry
/// gives the tag `inject` uses by default, and the patches name the image
/// only, so that an overlay's `images:` entry for `podpath` replaces it.
#[test]
fn image_reference_is_one_setting() {
    assert_eq!(
        DEFAULT_IMAGE,
        format!("{IMAGE_NAME}:{}", env!("CARGO_PKG_VERSION"))
    );
    for kustomization in [
        include_str!("../../deploy/sidecar/kustomization.yaml"),
        include_str!("../../deploy/sidecar/classic/kustomization.yaml"),
    ] {
        let doc = &docs(kustomization)[0];
        let images = doc
            .get("images")
            .and_then(Node::items)
            .expect("the component has an images: list");
        assert_eq!(images.len(), 1);
        let name = at(&images[0], &["name"]).as_str().expect("name");
        let tag = at(&images[0], &["newTag"]).as_str().expect("newTag");
        assert_eq!(name, IMAGE_NAME);
        assert_eq!(
            tag,
            env!("CARGO_PKG_VERSION"),
            "bump the components' newTag with the crate version"
        );
    }
    for patch in [
        include_str!("../../deploy/sidecar/podpath-native.yaml"),
        include_str!("../../deploy/sidecar/podpath-native-cronjob.yaml"),
        include_str!("../../deploy/sidecar/classic/podpath-classic.yaml"),
        include_str!("../../deploy/sidecar/classic/podpath-classic-cronjob.yaml"),
    ] {
        let images: Vec<&str> = patch
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("image:"))
            .collect();
        assert_eq!(images, [format!("image: {IMAGE_NAME}")]);
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

    /// proptest: which=4, cut=6176, pos=11150, byte=13: a lone CR in a
    /// comment is a line break to YAML but not to the line-based edits.
    #[test]
    fn a_lone_carriage_return_is_refused_with_its_position() {
        let err = inject("apiVersion: v1\n#\rkind: Pod\n", &native()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid YAML at line 2, column 2: a carriage return without a line feed (old Mac line ending): convert the file to \\n or \\r\\n line endings"
        );
        // CRLF files are fine.
        assert!(inject(&DEPLOYMENT.replace('\n', "\r\n"), &native()).is_ok());
    }

    #[test]
    fn regression_mutated_cronjob_complex_key() {
        // proptest seed cc 6fba19fe…: which=1, cut=342, pos=1808, byte=b'?'
        let mut bytes = CRONJOB.as_bytes().to_vec();
        let p = 1808 % bytes.len();
        bytes[p] = b'?';
        bytes.truncate(342);
        let text = String::from_utf8_lossy(&bytes);
        // Classic mode appended the sidecar after the `? ` key, outside
        // the containers list: now refused with a clear error instead.
        let err = inject(&text, &classic()).expect_err("refused");
        assert!(err.to_string().contains("cannot edit reliably"), "{err}");
        if let Ok(once) = inject(&text, &native()) {
            assert_eq!(inject(&once, &native()).as_deref(), Ok(once.as_str()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text(input in "\\PC{0,400}") {
            let _ = inject(&input, &InjectOptions::default());
        }

        /// Truncations and single-byte mutations of realistic manifests.
        #[test]
        fn mutated_manifests(which in 0usize..5, cut in 0usize..20000, pos in 0usize..20000, byte in 0u8..128) {
            let base = [DEPLOYMENT, CRONJOB, MULTI, KUBECTL_GET, INGRESS_NGINX][which];
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
                    // An upgrade is stable too.
                    let new = InjectOptions { image: "podpath:9".to_owned(), ..opts.clone() };
                    let upgraded = inject(&once, &new);
                    prop_assert!(upgraded.is_ok(), "{:?}", upgraded);
                    let upgraded = upgraded.unwrap_or_default();
                    let again = inject(&upgraded, &new);
                    prop_assert_eq!(again.as_deref(), Ok(upgraded.as_str()));
                }
            }
        }
    }
}
