{{/* Names and labels. */}}
{{- define "beacon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "beacon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "beacon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "beacon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: beacon
{{- end }}

{{/* Selector labels of one component: include "beacon.selectorLabels" (list $ "api") */}}
{{- define "beacon.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "beacon.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "beacon.componentLabels" -}}
{{- $ := index . 0 -}}
{{ include "beacon.labels" $ }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "beacon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "beacon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image, pinned: a tag that moves is refused. */}}
{{- define "beacon.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if has (lower $tag) (list "latest" "main" "master" "dev" "edge" "stable") }}
{{- fail (printf "image.tag %q moves: pin a release tag (and image.digest)" $tag) }}
{{- end }}
{{- $ref := printf "%s:%s" (required "image.repository is required" .Values.image.repository) $tag }}
{{- with .Values.image.digest }}
{{- if not (hasPrefix "sha256:" .) }}{{ fail "image.digest must look like sha256:<hex>" }}{{ end }}
{{- $ref = printf "%s@%s" $ref . }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* Secrets: where each comes from, and refusal of placeholders. */}}
{{- define "beacon.placeholder" -}}
{{- $v := lower (trim (toString .)) }}
{{- if or (eq $v "") (hasPrefix "<" $v) (hasPrefix "${" $v) (contains "changeme" $v) (contains "change-me" $v) (contains "change_me" $v) (contains "dev-only" $v) (contains "placeholder" $v) (has $v (list "password" "secret" "admin" "example" "xxx" "todo")) }}true{{ end }}
{{- end }}

{{/* Secret names: (list $ suffix); the chart's own Secret is fullname+suffix
     ("" for the Deployments, "-migrate" for the hook's copy). */}}
{{- define "beacon.appSecretName" -}}
{{- $ := index . 0 -}}
{{- if $.Values.secrets.existingSecret }}{{ $.Values.secrets.existingSecret }}{{ else }}{{ include "beacon.fullname" $ }}{{ index . 1 }}{{ end }}
{{- end }}

{{- define "beacon.dbSecretName" -}}
{{- $ := index . 0 -}}
{{- if $.Values.database.existingSecret }}{{ $.Values.database.existingSecret }}{{ else }}{{ include "beacon.fullname" $ }}{{ index . 1 }}{{ end }}
{{- end }}

{{- define "beacon.dbSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/* Fails the render with one line per missing setting. Included by every template. */}}
{{- define "beacon.validate" -}}
{{- if not .Values.secrets.existingSecret }}
{{- if include "beacon.placeholder" .Values.secrets.jwtSecret }}
{{- fail "secrets.jwtSecret: set a random value (openssl rand -base64 48) or secrets.existingSecret" }}
{{- end }}
{{- if lt (len .Values.secrets.jwtSecret) 32 }}
{{- fail "secrets.jwtSecret: must be at least 32 bytes" }}
{{- end }}
{{- if not (regexMatch "^[^@[:space:]]+@[^@[:space:]]+$" (toString .Values.secrets.adminEmail)) }}
{{- fail "secrets.adminEmail: set the first admin's e-mail address or secrets.existingSecret" }}
{{- end }}
{{- if or (include "beacon.placeholder" .Values.secrets.adminPassword) (lt (len (toString .Values.secrets.adminPassword)) 12) (eq .Values.secrets.adminPassword "beacon-dev-password") }}
{{- fail "secrets.adminPassword: set a real password of at least 12 characters or secrets.existingSecret" }}
{{- end }}
{{- end }}
{{- if not .Values.database.existingSecret }}
{{- if not (regexMatch "^postgres(ql)?://" (toString .Values.database.url)) }}
{{- fail "database.url: set a postgres:// URL or database.existingSecret (a Secret with DATABASE_URL)" }}
{{- end }}
{{- if include "beacon.placeholder" .Values.database.url }}
{{- fail "database.url: looks like a placeholder" }}
{{- end }}
{{- end }}
{{- if and .Values.worker.keda.enabled (lt (int .Values.worker.keda.minReplicas) 1) }}
{{- fail "worker.keda.minReplicas: must be at least 1 (the scheduler runs in the workers)" }}
{{- end }}
{{- if and .Values.worker.keda.enabled (eq .Values.worker.keda.source "prometheus") }}
{{- if not .Values.worker.keda.prometheus.serverAddress }}
{{- fail "worker.keda.prometheus.serverAddress: required with worker.keda.source=prometheus (e.g. http://prometheus-operated.monitoring.svc:9090)" }}
{{- end }}
{{- if not .Values.metrics.podMonitor.enabled }}
{{- fail "worker.keda.source=prometheus reads the workers' gauges: enable metrics.podMonitor (or use worker.keda.source=postgresql)" }}
{{- end }}
{{- end }}
{{- if and .Values.worker.keda.enabled (not (has .Values.worker.keda.source (list "prometheus" "postgresql"))) }}
{{- fail (printf "worker.keda.source: %q is not prometheus or postgresql" .Values.worker.keda.source) }}
{{- end }}
{{- if and .Values.dashboard.enabled .Values.ingress.enabled (not .Values.ingress.dashboard.host) }}
{{- fail "ingress.dashboard.host: required with ingress.enabled" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.api.host) }}
{{- fail "ingress.api.host: required with ingress.enabled" }}
{{- end }}
{{- end }}

{{/* Secrets' environment: (list $ suffix), see beacon.appSecretName. */}}
{{- define "beacon.secretEnv" -}}
{{- $ := index . 0 -}}
- name: BEACON_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "beacon.appSecretName" . }}
      key: BEACON_JWT_SECRET
- name: BEACON_ADMIN_EMAIL
  valueFrom:
    secretKeyRef:
      name: {{ include "beacon.appSecretName" . }}
      key: BEACON_ADMIN_EMAIL
- name: BEACON_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "beacon.appSecretName" . }}
      key: BEACON_ADMIN_PASSWORD
{{- end }}

{{- define "beacon.databaseEnv" -}}
{{- $ := index . 0 -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "beacon.dbSecretName" . }}
      key: {{ include "beacon.dbSecretKey" $ }}
{{- end }}

{{/* The ports Beacon listens on: BEACON_*_ADDR and containerPort come from here only. */}}
{{- define "beacon.opsPort" -}}9464{{- end }}
{{- define "beacon.apiPort" -}}8080{{- end }}
{{- define "beacon.dashboardPort" -}}8081{{- end }}

{{/* Environment of every Beacon container; (list $ role shutdownSeconds). */}}
{{- define "beacon.commonEnv" -}}
{{- $ := index . 0 -}}
- name: BEACON_ENV
  value: {{ $.Values.beacon.env | quote }}
- name: BEACON_LOG_FORMAT
  value: json
- name: BEACON_LOG_LEVEL
  value: {{ $.Values.beacon.logLevel | quote }}
- name: BEACON_OPS_ADDR
  value: ":{{ include "beacon.opsPort" $ }}"
- name: BEACON_SHUTDOWN_TIMEOUT
  value: "{{ index . 2 }}s"
{{- if $.Values.collector.enabled }}
# Traces and logs to the collector; metrics are scraped from the ops port instead of
# pushed, so they are not counted twice.
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: "http://{{ include "beacon.fullname" $ }}-collector:4317"
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: grpc
- name: OTEL_METRICS_EXPORTER
  value: none
{{- end }}
{{- range $name, $value := $.Values.beacon.extraEnv }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Hardening, as in compose: non-root, read-only root, no capabilities. */}}
{{- define "beacon.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "beacon.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end }}

{{/* Probes on the ops port. */}}
{{- define "beacon.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: ops
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: ops
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{/* Scheduling knobs of a component's values. */}}
{{- define "beacon.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules. */}}
{{- define "beacon.egressDNS" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}

{{- define "beacon.egressDatabase" -}}
{{- $db := .Values.networkPolicy.database -}}
- ports:
    - {protocol: TCP, port: {{ $db.port }}}
  {{- if or $db.cidrs $db.namespaceSelector $db.podSelector }}
  to:
    {{- range $db.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- if or $db.namespaceSelector $db.podSelector }}
    - {{- with $db.namespaceSelector }}
      namespaceSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $db.podSelector }}
      podSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
  {{- end }}
{{- end }}

{{- define "beacon.egressCollector" -}}
{{- if .Values.collector.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "beacon.selectorLabels" (list . "collector") | nindent 10 }}
  ports:
    - {protocol: TCP, port: 4317}
{{- end }}
{{- end }}

{{/* Ingress from monitoring to the ops port. */}}
{{- define "beacon.ingressOps" -}}
- from:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.monitoring.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.monitoring.podSelector | nindent 8 }}
  ports:
    - {protocol: TCP, port: ops}
{{- end }}

{{/* KEDA's postgresql trigger queries (tested against a migrated database in chartcheck). */}}
{{- define "beacon.kedaBacklogQuery" -}}
SELECT count(*)::float8 FROM river_job WHERE queue = 'checks' AND state IN ('available', 'running')
{{- end }}
{{- define "beacon.kedaAgeQuery" -}}
SELECT coalesce(extract(epoch FROM now() - min(scheduled_at)), 0)::float8 FROM river_job WHERE queue = 'checks' AND state = 'available'
{{- end }}
