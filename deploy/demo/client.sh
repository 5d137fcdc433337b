#!/bin/sh
# Calls demo-app by every path podpath attributes, every INTERVAL_SECONDS:
#   loopback    http://localhost/                (this pod's own nginx)
#   pod_ip      http://<demo-app pod IP>/        (literal pod IP)
#   cluster_ip  http://$DEMO_APP_BY_IP_SERVICE_HOST/  (literal ClusterIP)
#   dns         demo-app, demo-app.podpath-demo, demo-app.podpath-demo.svc.cluster.local
#
# Pod IP: looked up from the headless Service demo-app-pods only every
# POD_IP_REFRESH_SECONDS and then reused, as applications that cache an
# address do. Right after a lookup podpath still knows the address from the
# DNS answer and reports those calls as path="dns" (target="pod_ip"); once
# that answer has expired they are path="pod_ip".
# ClusterIP: from the Service environment variables the kubelet injects
# (present when the Service existed before the pod), so no DNS is involved.
# The Service demo-app-by-ip is never looked up by name: an address that a
# DNS answer in this pod returned counts as path="dns" for TTL plus
# podpath's grace period, and demo-app's ClusterIP is resolved every loop.
interval=${INTERVAL_SECONDS:-2}
refresh=${POD_IP_REFRESH_SECONDS:-300}
domain=${CLUSTER_DOMAIN:-cluster.local}
ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace 2>/dev/null || echo podpath-demo)
pod_ip=""
resolved_at=0

call() {
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1") || code="error"
    echo "$(date -u +%H:%M:%S) $2 $1 -> $code"
}

while true; do
    now=$(date +%s)
    if [ -z "$pod_ip" ] || [ $((now - resolved_at)) -ge "$refresh" ]; then
        pod_ip=$(getent ahostsv4 "demo-app-pods.$ns.svc.$domain" | awk 'NR == 1 { print $1 }')
        resolved_at=$now
    fi
    call "http://localhost/" loopback
    if [ -n "$pod_ip" ]; then
        call "http://$pod_ip/" pod_ip
    fi
    if [ -n "$DEMO_APP_BY_IP_SERVICE_HOST" ]; then
        call "http://$DEMO_APP_BY_IP_SERVICE_HOST:${DEMO_APP_BY_IP_SERVICE_PORT:-80}/" cluster_ip
    fi
    call "http://demo-app/" dns
    call "http://demo-app.$ns/" dns
    call "http://demo-app.$ns.svc.$domain/" dns
    if [ "$CALL_MISSING_NAME" = "true" ]; then
        call "http://no-such-service/" dns
    fi
    sleep "$interval"
done
