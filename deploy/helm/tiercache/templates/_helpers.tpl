{{/* Names and labels. */}}
{{- define "tiercache.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tiercache.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tiercache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tiercache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tiercache.labels" -}}
{{ include "tiercache.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
tiercache.mib: a size as the daemon reads it (512MiB, 2GiB, 1.5GB or
bytes) in MiB, as a float string.
*/}}
{{- define "tiercache.mib" -}}
{{- $s := . | toString | trim -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?B)?$" $s) -}}
{{- fail (printf "tiercache: %q is not a size (512MiB, 2GiB, 1.5GB or bytes)" $s) -}}
{{- end -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" $s | float64 -}}
{{- $unit := regexFind "[KMGT]i?B$" $s -}}
{{- $f := dict "" (divf 1 1048576) "KiB" (divf 1 1024) "MiB" 1.0 "GiB" 1024.0 "TiB" 1048576.0 "KB" (divf 1000 1048576) "MB" (divf 1000000 1048576) "GB" (divf 1000000000 1048576) "TB" (divf 1000000000000 1048576) -}}
{{- mulf $n (get $f $unit) -}}
{{- end -}}

{{/*
tiercache.clampf: [value, low, high] -> value within [low, high].
*/}}
{{- define "tiercache.clampf" -}}
{{- $v := index . 0 | float64 -}}
{{- minf (maxf $v (index . 1 | float64)) (index . 2 | float64) -}}
{{- end -}}

{{/*
tiercache.memoryBoundMiB: the daemon's memory bound in MiB (README,
Operations, Memory) for the chart's cache sizes, rounded up.
*/}}
{{- define "tiercache.memoryBoundMiB" -}}
{{- $mem := include "tiercache.mib" .Values.cache.memMax | float64 -}}
{{- $disk := include "tiercache.mib" .Values.cache.diskMax | float64 -}}
{{- $mv := include "tiercache.mib" .Values.cache.maxValue | float64 -}}
{{- $inflight := addf (maxf (mulf 4 $mv) 256) 32 -}}
{{- $l1 := mulf 1.15 $mem -}}
{{- $queue := include "tiercache.clampf" (list (divf $mem 4) 8 64) | float64 -}}
{{- $buffers := include "tiercache.clampf" (list (divf $mem 8) 8 64) | float64 -}}
{{- $memtables := mulf 2 (include "tiercache.clampf" (list (divf $disk 32) 1 64) | float64) -}}
{{- $pebble := addf (minf 256 (divf $disk 8)) $memtables (mulf 4 (maxf $mv 4)) -}}
{{- $leases := divf (mulf .Values.cache.maxLeases 512) 1048576 -}}
{{- /* L2's marks of entries read since written: 48 bytes per 16 KiB of diskMax, 1 Ki to 4 Mi */ -}}
{{- $marks := divf (mulf (include "tiercache.clampf" (list (mulf $disk 64) 1024 4194304) | float64) 48) 1048576 -}}
{{- $bound := addf $inflight $l1 $queue $buffers $pebble $leases $marks 64 -}}
{{- if eq (toString .Values.cache.eviction) "s3fifo" -}}
{{- /* S3-FIFO's ghost: 72 bytes per 16 KiB of memMax + diskMax, 1 Ki to 4 Mi entries */ -}}
{{- $ghost := include "tiercache.clampf" (list (mulf (addf $mem $disk) 64) 1024 4194304) | float64 -}}
{{- $bound = addf $bound (divf (mulf $ghost 72) 1048576) -}}
{{- end -}}
{{- if .Values.peer.enabled -}}
{{- $bound = addf $bound $mv 16.25 128 64 -}}
{{- end -}}
{{- ceil $bound | int64 -}}
{{- end -}}

{{/* tiercache.memory: the container's memory request and limit. */}}
{{- define "tiercache.memory" -}}
{{- if and .Values.resources.limits .Values.resources.limits.memory -}}
{{- .Values.resources.limits.memory -}}
{{- else -}}
{{- printf "%dMi" (add (include "tiercache.memoryBoundMiB" . | int64) (.Values.resources.headroomMiB | int64)) -}}
{{- end -}}
{{- end -}}

{{/* tiercache.socketPath: the socket's path, in the daemon and in pipelines. */}}
{{- define "tiercache.socketPath" -}}
{{- printf "%s/%s" (.Values.socket.hostPath | trimSuffix "/") .Values.socket.name -}}
{{- end -}}

{{/* tiercache.checks: settings that cannot work together fail the render. */}}
{{- define "tiercache.checks" -}}
{{- if and .Values.peer.enabled (eq (toString .Values.nats.url) "off") -}}
{{- fail "tiercache: peer.enabled needs NATS (nats.url is off)" -}}
{{- end -}}
{{- if and .Values.peer.enabled (not .Values.peer.passwordSecret) -}}
{{- fail "tiercache: peer.enabled needs peer.passwordSecret (a Secret with the key password)" -}}
{{- end -}}
{{- if and (eq .Values.data.type "local") (not .Values.data.local.nodes) -}}
{{- fail "tiercache: data.type local needs data.local.nodes" -}}
{{- end -}}
{{- if not (has .Values.data.type (list "hostPath" "local")) -}}
{{- fail (printf "tiercache: data.type is %q, not hostPath or local" .Values.data.type) -}}
{{- end -}}
{{- if and .Values.nats.auth.existingSecret (not (has .Values.nats.auth.type (list "creds" "userPassword"))) -}}
{{- fail (printf "tiercache: nats.auth.type is %q, not creds or userPassword" .Values.nats.auth.type) -}}
{{- end -}}
{{- end -}}
