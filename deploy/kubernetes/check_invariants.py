"""What the schema and the scanner cannot know about these manifests, checked on the rendered
output (scripts/k8s-validate.sh runs it on every variant; exit 1 on any finding):

- the policy ConfigMap holds exactly config/ledger-policy.json, mounted as a directory (no
  subPath), so the kubelet's `..data` swap reaches the ledger's hot reload;
- identities agree: each pod's SPIFFE ID is spiffe://TD/ns/NAMESPACE/sa/SERVICEACCOUNT (what
  csi-driver-spiffe and the SPIRE variant issue), payments' --server-id is the ledger's, and the
  policy names the clients' IDs (a renamed namespace or account would otherwise be default deny);
- the certificate, key, CA and policy paths lie on the volumes that provide them;
- restricted Pod Security, for every container including init containers and sidecars, plus
  this project's own rules (read-only root, no service account token, requests and limits);
- the probes are the binaries' own `health` subcommand;
- the NetworkPolicies allow exactly the documented flows between the workloads (and deny the
  others), and the ledger's egress covers PostgreSQL's EndpointSlice addresses on 5432.

Usage: check_invariants.py REPO_ROOT RENDERED.yaml...
       check_invariants.py --self-test REPO_ROOT RENDERED.yaml
The self-test breaks a rendered variant in known ways, one at a time, and fails unless each
breakage is reported: a check that cannot fail checks nothing.
"""

import copy

import ipaddress
import json
import posixpath
import sys

import yaml

RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}
# Documented flows (README "From compose to a cluster"): (from, to, port).
ALLOWED = {("payments", "ledger", 8443), ("auditor", "ledger", 8443)}
WORKLOADS = ("ledger", "payments", "auditor")


class Findings:
    def __init__(self, source):
        self.source = source
        self.items = []
        self.checked = 0

    def check(self, ok, message):
        self.checked += 1
        if not ok:
            self.items.append(f"{self.source}: {message}")


def pod_specs(docs):
    """(kind/name, pod template metadata, pod spec) of every workload."""
    for d in docs:
        kind, spec = d["kind"], d.get("spec", {})
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            t = spec["template"]
        elif kind == "CronJob":
            t = spec["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            t = d
        else:
            continue
        yield f"{kind}/{d['metadata']['name']}", t.get("metadata", {}), t["spec"]


def containers(spec):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            yield key, c


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env") or []}


def selects(selector, labels):
    """A Kubernetes label selector applied to a label set."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def port_allowed(ports, port):
    return not ports or any(p.get("port") in (None, port) for p in ports)


def peer_is_pod(peer, labels):
    """A same-namespace pod peer (no namespaceSelector, no ipBlock) matching labels."""
    return "podSelector" in peer and "namespaceSelector" not in peer and selects(peer["podSelector"], labels)


def applies(np, labels, direction):
    return selects(np["spec"]["podSelector"], labels) and direction in np["spec"].get("policyTypes", ["Ingress"])


def ingress_allowed(policies, src, dst, port):
    return any(
        any(port_allowed(r.get("ports"), port) and any(peer_is_pod(p, src) for p in r.get("from") or [])
            for r in np["spec"].get("ingress") or [])
        for np in policies if applies(np, dst, "Ingress"))


def egress_allowed(policies, src, dst, port):
    return any(
        any(port_allowed(r.get("ports"), port) and any(peer_is_pod(p, dst) for p in r.get("to") or [])
            for r in np["spec"].get("egress") or [])
        for np in policies if applies(np, src, "Egress"))


def check_pod_security(f, name, spec):
    f.check(not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), f"{name}: host namespaces")
    f.check(spec.get("automountServiceAccountToken") is False, f"{name}: automountServiceAccountToken must be false")
    psc = spec.get("securityContext") or {}
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        f.check(kinds <= RESTRICTED_VOLUMES, f"{name}: volume {v['name']} of type {sorted(kinds)} is not allowed by restricted Pod Security")
    for key, c in containers(spec):
        where = f"{name} {key} {c['name']}"
        sc = c.get("securityContext") or {}
        f.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false")
        f.check(not sc.get("privileged"), f"{where}: privileged")
        caps = sc.get("capabilities") or {}
        f.check("ALL" in (caps.get("drop") or []), f"{where}: capabilities must drop ALL")
        f.check(set(caps.get("add") or []) <= {"NET_BIND_SERVICE"}, f"{where}: added capabilities")
        f.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot")
        f.check(sc.get("runAsUser", psc.get("runAsUser")) not in (0, None), f"{where}: runAsUser must be a non-zero uid")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        f.check(seccomp in ("RuntimeDefault", "Localhost"), f"{where}: seccompProfile RuntimeDefault or Localhost")
        f.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                f.check(r in (res.get(part) or {}), f"{where}: resources.{part}.{r}")
        f.check(not any(p.get("hostPort") for p in c.get("ports") or []), f"{where}: hostPort")


def mount_for(c, path):
    """The volumeMount whose directory holds path, if any."""
    best = None
    for m in c.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    return best


def check_variant(repo, path, docs=None):
    f = Findings(path)
    if docs is None:
        with open(path) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    namespaces = by_kind.get("Namespace", [])
    f.check(len(namespaces) == 1, "exactly one Namespace")
    ns = namespaces[0]["metadata"]["name"] if namespaces else None
    labels = namespaces[0]["metadata"].get("labels", {}) if namespaces else {}
    f.check(labels.get("pod-security.kubernetes.io/enforce") == "restricted", "namespace enforces restricted Pod Security")
    policies = by_kind.get("NetworkPolicy", [])
    f.check(any(np["spec"]["podSelector"] == {} and set(np["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                and not np["spec"].get("ingress") and not np["spec"].get("egress") for np in policies),
            "a default-deny NetworkPolicy (every pod, ingress and egress)")
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    service_accounts = {s["metadata"]["name"] for s in by_kind.get("ServiceAccount", [])}

    with open(posixpath.join(repo, "config/ledger-policy.json"), "rb") as fh:
        policy_source = fh.read()
    with open(posixpath.join(repo, "deploy/kubernetes/base/ledger-policy.json"), "rb") as fh:
        f.check(fh.read() == policy_source,
                "deploy/kubernetes/base/ledger-policy.json differs from config/ledger-policy.json (copy it again)")

    pods = {}  # workload name -> (labels, spec, main container, env)
    for name, meta, spec in pod_specs(docs):
        check_pod_security(f, name, spec)
        main = spec["containers"][0]
        workload = (meta.get("labels") or {}).get("app.kubernetes.io/name")
        f.check(workload in WORKLOADS, f"{name}: unknown workload label {workload!r}")
        f.check(spec.get("serviceAccountName") in service_accounts, f"{name}: its ServiceAccount is not in the render")
        pods[workload] = (meta.get("labels") or {}, spec, main, env_of(main))
    for w in WORKLOADS:
        f.check(w in pods, f"workload {w} missing")
    if any(w not in pods for w in WORKLOADS):
        return f

    def spiffe_id(workload, trust_domain):
        return f"spiffe://{trust_domain}/ns/{ns}/sa/{pods[workload][1]['serviceAccountName']}"

    ledger_labels, ledger_spec, ledger, lenv = pods["ledger"]
    td = lenv.get("LEDGER_TRUST_DOMAIN")
    ledger_id = spiffe_id("ledger", td)

    # The policy: a directory mount of the ConfigMap holding the repository's policy.
    policy_path = lenv.get("LEDGER_POLICY") or ""
    m = mount_for(ledger, policy_path)
    f.check(m is not None, f"LEDGER_POLICY {policy_path} is on no volume")
    policy = None
    if m:
        f.check("subPath" not in m and "subPathExpr" not in m,
                "the policy volume is mounted with subPath: the kubelet never updates such a mount")
        f.check(posixpath.dirname(policy_path) == m["mountPath"].rstrip("/"), "the policy file is directly in its mount")
        vol = next(v for v in ledger_spec["volumes"] if v["name"] == m["name"])
        cm = configmaps.get((vol.get("configMap") or {}).get("name"))
        f.check(cm is not None, "the policy volume is not a ConfigMap of the render")
        if cm:
            key = posixpath.basename(policy_path)
            f.check(key in cm.get("data", {}), f"ConfigMap {cm['metadata']['name']} has no key {key}")
            if key in cm.get("data", {}):
                f.check(cm["data"][key].encode() == policy_source, "the policy ConfigMap differs from config/ledger-policy.json")
                policy = json.loads(cm["data"][key])

    principals = set()
    for rules in ("allow_rules", "deny_rules"):
        for r in (policy or {}).get(rules, []):
            principals.update((r.get("source") or {}).get("principals", []))

    for w in WORKLOADS:
        wl, spec, main, env = pods[w]
        prefix = "LEDGER_" if w == "ledger" else "PAYMENTS_"
        for var in ("CERT", "KEY", "CA"):
            p = env.get(prefix + var) or ""
            f.check(mount_for(main, p) is not None, f"{w}: {prefix}{var}={p} is on no volume")
        probes = [main.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe") if main.get(k)]
        if w != "auditor":  # a Job has no probes
            f.check(any(k in main for k in ("livenessProbe",)) and "readinessProbe" in main, f"{w}: liveness and readiness probes")
        for p in probes:
            cmd = (p.get("exec") or {}).get("command") or []
            f.check(cmd == [main["command"][0], "health"], f"{w}: probe {cmd} is not the binary's health subcommand")
        if w != "ledger":
            server_id = env.get("PAYMENTS_SERVER_ID")
            f.check(server_id == ledger_id, f"{w}: PAYMENTS_SERVER_ID {server_id} is not the ledger's ID {ledger_id}")
            f.check(spiffe_id(w, td) in principals, f"{w}: the policy never names {spiffe_id(w, td)}")
            server = (env.get("PAYMENTS_SERVER") or "").split("://")[-1]
            host, _, port = server.partition(":")
            svc = next((s for s in by_kind.get("Service", []) if host in (
                s["metadata"]["name"], f"{s['metadata']['name']}.{ns}.svc", f"{s['metadata']['name']}.{ns}.svc.cluster.local")), None)
            f.check(svc is not None and selects({"matchLabels": svc["spec"].get("selector") or {}}, ledger_labels),
                    f"{w}: PAYMENTS_SERVER {server} is not a Service selecting the ledger")

    # Flows between the workloads: exactly the documented ones, each side on its own (the
    # ledger's ingress must not rely on the clients' egress, nor the reverse). A stranger is
    # any other pod of the namespace, one deployed later included.
    stranger = {"app.kubernetes.io/name": "stranger"}
    for port in (8443,):
        for src in WORKLOADS:
            for dst in WORKLOADS:
                expected = (src, dst, port) in ALLOWED
                for side, allowed in (("ingress", ingress_allowed), ("egress", egress_allowed)):
                    got = allowed(policies, pods[src][0], pods[dst][0], port)
                    if expected or side == "egress":
                        f.check(got == expected, f"{side} {src} -> {dst}:{port} is {'allowed' if got else 'denied'}, documented as {'allowed' if expected else 'denied'}")
        for w in WORKLOADS:
            f.check(not ingress_allowed(policies, stranger, pods[w][0], port), f"ingress to {w}:{port} is open to any pod")
            f.check(not egress_allowed(policies, pods[w][0], stranger, port), f"egress from {w} to any pod on {port}")

    # PostgreSQL: the ledger may reach every address of its EndpointSlices on 5432, nothing else.
    pg_addresses = [ipaddress.ip_address(a)
                    for s in by_kind.get("EndpointSlice", [])
                    if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == "postgres"
                    for e in s.get("endpoints") or [] for a in e.get("addresses") or []]
    f.check(bool(pg_addresses), "no EndpointSlice for the postgres Service")
    blocks = [ipaddress.ip_network(p["ipBlock"]["cidr"])
              for np in policies if selects(np["spec"]["podSelector"], ledger_labels)
              for r in np["spec"].get("egress") or [] if port_allowed(r.get("ports"), 5432)
              for p in r.get("to") or [] if "ipBlock" in p]
    for a in pg_addresses:
        f.check(any(a in b for b in blocks), f"the ledger's egress does not cover PostgreSQL at {a}:5432")
    db = lenv.get("LEDGER_DATABASE") or ""
    f.check(f"@postgres.{ns}.svc:5432/" in db, f"LEDGER_DATABASE {db} does not name the postgres Service of namespace {ns}")
    return f


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def pod(docs, kind, name):
    d = find(docs, kind, name)
    return d["spec"]["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" else d["spec"]["template"]["spec"]


def env_set(container, name, value):
    for e in container["env"]:
        if e["name"] == name:
            e["value"] = value


MUTATIONS = {
    "policy mounted with subPath": lambda d: next(
        m for m in pod(d, "Deployment", "ledger")["containers"][0]["volumeMounts"] if m["name"] == "policy"
    ).update(subPath="ledger-policy.json"),
    "payments pins another server ID": lambda d: env_set(
        pod(d, "Deployment", "payments")["containers"][0], "PAYMENTS_SERVER_ID", "spiffe://zt.example/ns/prod/sa/web"),
    "auditor's account renamed": lambda d: pod(d, "CronJob", "auditor").update(serviceAccountName="payments-audit"),
    "no default deny": lambda d: d.remove(find(d, "NetworkPolicy", "default-deny")),
    "payments egress to the ledger removed": lambda d: find(d, "NetworkPolicy", "ledger-clients")["spec"].update(egress=[]),
    "ledger ingress open to any pod": lambda d: find(d, "NetworkPolicy", "ledger")["spec"]["ingress"][0].update(
        **{"from": [{"podSelector": {}}]}),
    "privilege escalation in a container": lambda d: pod(d, "Deployment", "payments")["containers"][0][
        "securityContext"].update(allowPrivilegeEscalation=True),
    "a hostPath volume": lambda d: pod(d, "Deployment", "ledger")["volumes"].append(
        {"name": "host", "hostPath": {"path": "/"}}),
    "no memory limit": lambda d: pod(d, "CronJob", "auditor")["containers"][0]["resources"]["limits"].pop("memory"),
    "postgres moved, egress not": lambda d: find(d, "EndpointSlice", "postgres-external")["endpoints"][0].update(
        addresses=["198.51.100.7"]),
    "policy ConfigMap edited by hand": lambda d: find(d, "ConfigMap", "ledger-policy")["data"].update(
        {"ledger-policy.json": "{}"}),
}


def self_test(repo, path):
    with open(path) as fh:
        pristine = [d for d in yaml.safe_load_all(fh) if d]
    clean = check_variant(repo, path, copy.deepcopy(pristine))
    missed = 0 if not clean.items else 1
    for item in clean.items:
        print(f"FAIL self-test: the unbroken render fails: {item}")
    for name, mutate in MUTATIONS.items():
        docs = copy.deepcopy(pristine)
        mutate(docs)
        found = check_variant(repo, f"{path} ({name})", docs).items
        print(f"{'caught' if found else 'MISSED'}: {name}" + (f" -> {found[0].split(': ', 1)[1]}" if found else ""))
        missed += not found
    print(f"self-test: {len(MUTATIONS) - missed} of {len(MUTATIONS)} breakages caught")
    sys.exit(1 if missed else 0)


def main():
    if sys.argv[1] == "--self-test":
        self_test(sys.argv[2], sys.argv[3])
    repo, files = sys.argv[1], sys.argv[2:]
    failed = 0
    for path in files:
        f = check_variant(repo, path)
        for item in f.items:
            print(f"FAIL {item}")
        failed += len(f.items)
        print(f"{path}: {f.checked - len(f.items)} of {f.checked} invariants hold")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
