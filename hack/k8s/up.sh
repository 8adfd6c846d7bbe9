#!/usr/bin/env bash
# Usage: hack/k8s/up.sh DIR
# Starts etcd, kube-apiserver (real PKI, RBAC on) and kube-controller-manager on free 127.0.0.1 ports,
# with all state under DIR. Writes DIR/kubeconfig (admin) and DIR/env (source it: KUBECONFIG + PATH).
# Returns once /readyz is 200, the default namespace exists and the controller manager is healthy;
# fails within 120 s printing the tail of the failing component's log. Several DIRs can run at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/common.sh"

dir="${1:?usage: hack/k8s/up.sh DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
bin="$("$here/build.sh")"
pki="$dir/pki" logs="$dir/logs" run="$dir/run"
mkdir -p "$pki" "$logs" "$run" "$dir/etcd"
start_deadline=$((SECONDS + 120))
remaining() { local r=$((start_deadline - SECONDS)); [ "$r" -gt 1 ] && echo "$r" || echo 1; }

alive() { kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# launch COMPONENT DESCRIPTION START HEALTHY: runs START (it picks its ports with free_port and
# starts COMPONENT in the background), then waits for HEALTHY. A port that was free when picked can be
# taken by another process before the component binds it (tests start clusters and connections in
# parallel): when COMPONENT exited saying so, it is started again on new ports, three times at most.
launch() {
  local component="$1" what="$2" start="$3" healthy="$4" attempt
  for attempt in 1 2 3; do
    "$start"
    wait_for "$what" "$(remaining)" "$healthy" && return 0
    if [ "$attempt" -lt 3 ] && ! alive "$component" \
      && grep -q "address already in use" "$logs/$component.log"; then
      echo "up.sh: another process took a port of $component; starting it again on new ports" >&2
      continue
    fi
    return 1
  done
}

fail() { # fail COMPONENT MESSAGE
  echo "up.sh: $2" >&2
  echo "---- last lines of $logs/$1.log ----" >&2
  tail -n 40 "$logs/$1.log" >&2 || true
  "$here/down.sh" "$dir" >/dev/null 2>&1 || true
  exit 1
}

# --- PKI: a throwaway CA, the API server's serving cert, an admin client cert, the SA signing key.
if [ ! -f "$pki/ca.crt" ]; then
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rostersync-test-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat > serving.ext <<EXT
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.ext -out apiserver.crt 2>/dev/null
    echo "extendedKeyUsage=clientAuth" > client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=rostersync-admin" -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
fi

# --- etcd
start_etcd() {
  # Again after a lost port: from an empty data dir (the first try may have recorded its peer URL).
  if [ -n "${etcd_tried:-}" ]; then rm -rf "$dir/etcd" && mkdir -p "$dir/etcd"; fi
  etcd_tried=1
  etcd_port="$(free_port)" etcd_peer="$(free_port)"
  setsid "$bin/etcd" --name rostersync-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "rostersync-test=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync=true --log-level warn >"$logs/etcd.log" 2>&1 </dev/null &
  echo $! > "$run/etcd.pid"
}
etcd_healthy() { alive etcd || return 2; curl -fsS --max-time 5 "http://127.0.0.1:$etcd_port/health"; }
launch etcd "etcd health" start_etcd etcd_healthy || fail etcd "etcd did not become healthy"

# --- kube-apiserver
start_apiserver() {
  api_port="$(free_port)"
  setsid "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC --allow-privileged=true \
    --enable-priority-and-fairness=false \
    --endpoint-reconciler-type none \
    >"$logs/kube-apiserver.log" 2>&1 </dev/null &
  echo $! > "$run/kube-apiserver.pid"
}
readyz() {
  alive kube-apiserver || return 2
  curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz" | grep -q '^ok$'
}
launch kube-apiserver "kube-apiserver /readyz" start_apiserver readyz \
  || fail kube-apiserver "kube-apiserver did not become ready"
echo "$api_port" > "$run/api_port"

cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: rostersync-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: rostersync-test
  context: {cluster: rostersync-test, user: admin, namespace: default}
current-context: rostersync-test
KC

wait_for "the default namespace" "$(remaining)" "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get namespace default \
  || fail kube-apiserver "the default namespace does not exist"

# --- kube-controller-manager (envtest lacks it: GC, Jobs, namespaces and ServiceAccounts need it)
start_kcm() {
  kcm_port="$(free_port)"
  setsid "$bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --leader-elect=false --use-service-account-credentials=false \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --controllers garbage-collector-controller,job-controller,namespace-controller,serviceaccount-controller,ttl-after-finished-controller \
    --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    >"$logs/kube-controller-manager.log" 2>&1 </dev/null &
  echo $! > "$run/kube-controller-manager.pid"
}
kcm_healthy() { alive kube-controller-manager || return 2; curl -fsSk --max-time 5 "https://127.0.0.1:$kcm_port/healthz"; }
launch kube-controller-manager "kube-controller-manager /healthz" start_kcm kcm_healthy \
  || fail kube-controller-manager "kube-controller-manager did not become healthy"

cat > "$dir/env" <<ENV
export KUBECONFIG="$dir/kubeconfig"
export PATH="$bin:\$PATH"
ENV
echo "up.sh: control plane ready at https://127.0.0.1:$api_port (source $dir/env)" >&2
