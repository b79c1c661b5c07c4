#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests in deploy/kubernetes (no cluster, no image
# pulls; PyPI is the only network it uses, once, to fill its venv):
#
#   1. a venv in target/k8s-validate-venv from deploy/kubernetes/validate-requirements.txt
#      (every package pinned with its hash; re-made when that file changes): kubectl (its
#      built-in kustomize renders), kubernetes-validate (ships the API schemas), checkov,
#   2. renders every variant with `kubectl kustomize`: deploy/kubernetes/base (cert-manager
#      csi-driver-spiffe) and deploy/kubernetes/overlays/spire (SPIRE + spiffe-helper), into
#      target/k8s-validate/rendered/,
#   3. the project's invariants on each render (deploy/kubernetes/check_invariants.py:
#      identities, policy mount, restricted Pod Security for every container, the allowed
#      flows and no others, PostgreSQL's address in the ledger's egress),
#   4. schema validation, strict (unknown fields are errors), against Kubernetes $K8S_VERSION;
#      a resource without a schema fails unless it is a known CRD (ClusterSPIFFEID),
#   5. checkov (kubernetes framework) on the renders: zero failed checks, and every skipped
#      check must carry its reason (a checkov.io/skipN annotation on the resource: kustomize
#      drops YAML comments, annotations survive rendering).
#
# Each gate is first shown failing on a manifest broken on purpose (a gate that cannot fail
# checks nothing). Prints a closing "k8s-validate: N passed, N failed"; exits 1 on any
# failure. About 15 s with the venv in place, about 90 s from nothing (2 cores).
#
#   K8S_VERSION        Kubernetes version of the schemas (default 1.34.0)
#   K8S_VALIDATE_VENV  where the venv lives (default target/k8s-validate-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1 KUBECONFIG=/dev/null

k8s_version=${K8S_VERSION:-1.34.0}
venv=${K8S_VALIDATE_VENV:-target/k8s-validate-venv}
requirements=deploy/kubernetes/validate-requirements.txt
out=target/k8s-validate
variants=(base overlays/spire)
# Custom resources the schemas cannot know; anything else without a schema is an error.
known_crds='ClusterSPIFFEID with api version spire.spiffe.io/v1alpha1'

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
step() { printf '\n== %s\n' "$*"; }

step "venv ($venv)"
stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$stamp" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-hashes -r "$requirements"
  echo "$stamp" >"$venv/.requirements-sha256"
fi
py=$venv/bin/python
"$venv/bin/kubectl" version --client 2>/dev/null | sed 's/^/  /'
echo "  kubernetes-validate $("$venv/bin/kubernetes-validate" --version), checkov $("$venv/bin/checkov" --version)"

rm -rf "$out"
mkdir -p "$out/rendered" "$out/broken"

step "render (kubectl kustomize)"
rendered=()
for v in "${variants[@]}"; do
  file=$out/rendered/${v##*/}.yaml
  if "$venv/bin/kubectl" kustomize "deploy/kubernetes/$v" >"$file" 2>"$out/render.err"; then
    pass "render $v: $(grep -c '^kind: ' "$file") resources -> $file"
    rendered+=("$file")
  else
    fail "render $v: $(cat "$out/render.err")"
  fi
done
if ((${#rendered[@]} != ${#variants[@]})); then
  printf '\nk8s-validate: %d passed, %d failed\n' "$passed" "$failed"
  exit 1
fi

step "invariants (deploy/kubernetes/check_invariants.py)"
if "$py" deploy/kubernetes/check_invariants.py --self-test . "$out/rendered/base.yaml" >"$out/self-test.log" 2>&1; then
  pass "invariants self-test: $(tail -n 1 "$out/self-test.log")"
else
  cat "$out/self-test.log"
  fail "invariants self-test: the unbroken render fails, or a breakage went unnoticed"
fi
if "$py" deploy/kubernetes/check_invariants.py . "${rendered[@]}" >"$out/invariants.log" 2>&1; then
  while read -r line; do pass "$line"; done <"$out/invariants.log"
else
  cat "$out/invariants.log"
  fail "invariants"
fi

# A copy of the base render, broken on purpose for the schema and scanner gates.
"$py" - "$out/rendered/base.yaml" "$out/broken" <<'EOF'
import sys, yaml
src, dst = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
ledger = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ledger")
# Schema: a misspelt field (replica), silently dropped by a lenient apply.
typo = yaml.safe_load(yaml.safe_dump(ledger))
typo["spec"]["replica"] = typo["spec"].pop("replicas")
yaml.safe_dump(typo, open(f"{dst}/schema.yaml", "w"))
# Scanner: a privileged container with a writable root file system and no resources.
c = ledger["spec"]["template"]["spec"]["containers"][0]
c["securityContext"] = {"privileged": True}
c.pop("resources")
yaml.safe_dump(ledger, open(f"{dst}/scanner.yaml", "w"))
EOF

step "schemas (kubernetes-validate --strict, Kubernetes $k8s_version)"
if "$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$out/broken/schema.yaml" >"$out/schema-broken.log" 2>&1; then
  fail "schema self-test: a misspelt field passed"
else
  pass "schema self-test: a misspelt field is refused ($(grep -o "'replica' was unexpected" "$out/schema-broken.log" | head -n 1))"
fi
for file in "${rendered[@]}"; do
  log=$out/schema-$(basename "$file" .yaml).log
  set +e
  "$venv/bin/kubernetes-validate" --strict -k "$k8s_version" "$file" >"$log" 2>&1
  rc=$?
  set -e
  ok=$(grep -c '^INFO .* passed for resource' "$log" || true)
  unknown=$(grep '^WARN ' "$log" | grep -v -F "$known_crds" || true)
  crds=$(grep -c -F "$known_crds" "$log" || true)
  if ((rc == 0)) && [[ -z "$unknown" ]] && ((ok > 0)); then
    pass "schemas $file: $ok resources valid${crds:+, $crds known CRD(s) without a schema}"
  else
    grep -v '^INFO ' "$log" || true
    fail "schemas $file (exit $rc)"
  fi
done

step "scanner (checkov --framework kubernetes)"
checkov() {
  "$venv/bin/checkov" --framework kubernetes --skip-download --compact -o json "$@"
}
set +e
checkov -d "$out/broken" --skip-path schema.yaml >"$out/checkov-broken.json" 2>"$out/checkov-broken.err"
set -e
broken_failures=$("$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d[0] if isinstance(d,list) else d; print(d["summary"]["failed"])' "$out/checkov-broken.json" 2>/dev/null || echo 0)
if ((broken_failures > 0)); then
  pass "scanner self-test: a privileged, unbounded container fails $broken_failures checks"
else
  fail "scanner self-test: a privileged, unbounded container passed"
fi
set +e
checkov -d "$out/rendered" >"$out/checkov.json" 2>"$out/checkov.err"
set -e
if "$py" - "$out/checkov.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
reports = d if isinstance(d, list) else [d]
ok = True
for r in reports:
    s, res = r["summary"], r["results"]
    print(f"  checkov {s['checkov_version']}: {s['resource_count']} resources, {s['passed']} passed, "
          f"{s['failed']} failed, {s['skipped']} skipped, {s['parsing_errors']} parsing errors")
    ok &= s["failed"] == 0 and s["parsing_errors"] == 0 and s["resource_count"] > 0 and s["passed"] > 0
    for c in res["failed_checks"]:
        print(f"  FAILED {c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}")
    reasons = {}
    for c in res["skipped_checks"]:
        reason = (c.get("check_result") or {}).get("suppress_comment") or ""
        if len(reason.split()) < 5:
            print(f"  SKIPPED WITHOUT A REASON {c['check_id']} {c['resource']} ({c['file_path']})")
            ok = False
        reasons.setdefault((c["check_id"], reason), []).append(f"{c['resource']} ({c['file_path'].lstrip('/')})")
    for (check, reason), where in sorted(reasons.items()):
        print(f"  skipped {check} on {len(where)}: {reason}")
sys.exit(0 if ok else 1)
EOF
then
  pass "scanner: no failed check, every suppression has its reason"
else
  cat "$out/checkov.err" 2>/dev/null | tail -n 5
  fail "scanner"
fi

printf '\nk8s-validate: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
