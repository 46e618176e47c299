{{/* Names and labels shared by every template. */}}
{{- define "leadpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "leadpipe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "leadpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "leadpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "worker"). */}}
{{- define "leadpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "leadpipe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "leadpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leadpipe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "leadpipe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The non-secret settings, nulls left out (values.schema.json admits only LEADPIPE_* names). */}}
{{- define "leadpipe.configData" -}}
{{- range $name, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* env entries of the secret settings, all from the one existingSecret. */}}
{{- define "leadpipe.secretEnv" -}}
{{- $secret := required "existingSecret: name the Secret that holds the database URL, pepper, KEK and tokens" .Values.existingSecret -}}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ required (printf "secretEnv.%s.key is required" $name) $ref.key }}
      optional: {{ default false $ref.optional }}
{{- end }}
{{- end -}}

{{/* Writable paths under a read-only root file system. */}}
{{- define "leadpipe.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end -}}

{{- define "leadpipe.commonEnv" -}}
- name: LEADPIPE_HOME
  value: /data/leadpipe
- name: HOME
  value: /data
{{- end -}}

{{/* The hook Job's whole environment: ConfigMap values inlined, plus the common and secret entries. */}}
{{- define "leadpipe.hookEnv" -}}
{{- range $name, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{ include "leadpipe.commonEnv" . | trim }}
{{ include "leadpipe.secretEnv" . | trim }}
{{- end -}}

{{/*
Each HubSpot-calling pod's share of the token's budget: every worker process limits itself (pipeline/sinks/hubspot/
ratelimit.py), HubSpot counts all of them together. Pods: the workers (KEDA's maximum when it scales them) and the
separate rights workers. Rendered as env entries that override the ConfigMap's whole-budget values.
*/}}
{{- define "leadpipe.hubspotShareEnv" -}}
{{- $workers := int .Values.worker.replicaCount }}
{{- if .Values.autoscaling.keda.enabled }}
{{- $workers = int (min .Values.autoscaling.keda.maxReplicaCount (default .Values.autoscaling.keda.partitions .Values.config.LEADPIPE_TOPIC_PARTITIONS)) }}
{{- end }}
{{- $pods := $workers }}
{{- if .Values.worker.separateRightsWorker }}
{{- $pods = add $pods (int .Values.worker.rightsReplicaCount) }}
{{- end }}
{{- $pods = max 1 $pods }}
{{- $requests := int (default "190" .Values.config.LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS) }}
{{- $search := float64 (default "4.0" .Values.config.LEADPIPE_HUBSPOT_SEARCH_RATE_PER_S) }}
- name: LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS
  value: {{ max 1 (div $requests $pods) | quote }}
- name: LEADPIPE_HUBSPOT_SEARCH_RATE_PER_S
  value: {{ printf "%.3f" (divf (floor (divf (mulf $search 1000) $pods)) 1000) | quote }}
{{- end -}}

{{/* Where the workers, the API (review show) and the CLI reach the spam engine of the release. */}}
{{- define "leadpipe.spamEnv" -}}
{{- if .Values.spamEngine.enabled }}
{{- $host := printf "%s-spam-engine" (include "leadpipe.fullname" .) }}
- name: LEADPIPE_SPAM_ENGINE_ENABLED
  value: "true"
- name: LEADPIPE_SPAM_ENGINE_URL
  value: {{ printf "http://%s:11333" $host | quote }}
- name: LEADPIPE_SPAM_ENGINE_CONTROLLER_URL
  value: {{ printf "http://%s:11334" $host | quote }}
- name: LEADPIPE_SPAM_ENGINE_REDIS_HOST
  value: {{ $host | quote }}
- name: LEADPIPE_SPAM_ENGINE_REDIS_PORT
  value: "6379"
- name: LEADPIPE_SPAM_ENGINE_TIMEOUT_S
  value: {{ .Values.spamEngine.timeoutSeconds | quote }}
- name: LEADPIPE_SPAM_ENGINE_CONCURRENCY
  value: {{ .Values.spamEngine.concurrency | quote }}
{{- else }}
- name: LEADPIPE_SPAM_ENGINE_ENABLED
  value: "false"
{{- end }}
{{- end -}}

{{/* The worker Deployments' components (each has a headless Service of that name, worker-deployment.yaml). */}}
{{- define "leadpipe.workerComponents" -}}
{{- if .Values.worker.separateRightsWorker -}}
{{- toJson (list "worker" "rights-worker") -}}
{{- else -}}
{{- toJson (list "worker") -}}
{{- end -}}
{{- end -}}

{{/*
Where the console's charts (spam share, sink health) read the workers' counters: every pod of each worker Deployment,
through its headless Service ("dns+": each address the name resolves to). Left out when config sets it.
*/}}
{{- define "leadpipe.consoleMetricsEnv" -}}
{{- if not .Values.config.LEADPIPE_CONSOLE_METRICS_URLS }}
{{- $urls := list }}
{{- range $component := include "leadpipe.workerComponents" . | fromJsonArray }}
{{- $urls = append $urls (printf "dns+http://%s-%s:%v/metrics" (include "leadpipe.fullname" $) $component $.Values.worker.webPort) }}
{{- end }}
- name: LEADPIPE_CONSOLE_METRICS_URLS
  value: {{ toJson $urls | quote }}
{{- end }}
{{- end -}}
