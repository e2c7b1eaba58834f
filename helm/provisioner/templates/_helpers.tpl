{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "provisioner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "provisioner.fullname" -}}
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

{{- define "provisioner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard app.kubernetes.io labels. */}}
{{- define "provisioner.labels" -}}
helm.sh/chart: {{ include "provisioner.chart" . }}
{{ include "provisioner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: provisioner
{{- end }}

{{- define "provisioner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "provisioner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "provisioner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "provisioner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding credentials: the existing one, or the one the chart creates. */}}
{{- define "provisioner.secretName" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else }}
{{- printf "%s-credentials" (include "provisioner.fullname" .) }}
{{- end }}
{{- end }}

{{/* Every key of the credentials Secret that the rendered config or KEDA refers to. */}}
{{- define "provisioner.secretKeys" -}}
{{- $keys := list }}
{{- if .Values.amqp.passwordKey }}{{ $keys = append $keys .Values.amqp.passwordKey }}{{ end }}
{{- range $name, $account := .Values.accounts }}
{{- range $cred, $key := ($account.credentials | default dict) }}{{ $keys = append $keys $key }}{{ end }}
{{- end }}
{{- if and .Values.keda.enabled .Values.keda.hostSecretKey }}{{ $keys = append $keys .Values.keda.hostSecretKey }}{{ end }}
{{- if and (eq .Values.rateLimit.backend "redis") .Values.rateLimit.redis.urlKey }}{{ $keys = append $keys .Values.rateLimit.redis.urlKey }}{{ end }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/* Whether a credentials Secret is mounted at all. */}}
{{- define "provisioner.hasSecret" -}}
{{- if or .Values.credentials.existingSecret .Values.credentials.values }}true{{ end }}
{{- end }}

{{/*
Checks the values rules a JSON schema cannot express; fails the render with a message
naming the value to fix.
*/}}
{{- define "provisioner.validate" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.worker.drainDeadlineSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than worker.drainDeadlineSeconds (%v): the kubelet kills the pod when the grace period ends" .Values.terminationGracePeriodSeconds .Values.worker.drainDeadlineSeconds) }}
{{- end }}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are exclusive: KEDA creates its own HorizontalPodAutoscaler" }}
{{- end }}
{{- if and .Values.keda.enabled (not (or .Values.keda.authenticationRef .Values.keda.hostSecretKey)) }}
{{- fail "keda.enabled needs keda.authenticationRef or keda.hostSecretKey (the broker URL for the rabbitmq scaler)" }}
{{- end }}
{{- $keys := include "provisioner.secretKeys" . | fromJsonArray }}
{{- if and $keys (not (include "provisioner.hasSecret" .)) }}
{{- fail (printf "secret keys %v are referenced (amqp.passwordKey, accounts.*.credentials, keda.hostSecretKey, rateLimit.redis.urlKey) but neither credentials.existingSecret nor credentials.values is set" $keys) }}
{{- end }}
{{- if and (not .Values.credentials.existingSecret) .Values.credentials.values }}
{{- range $keys }}
{{- if not (hasKey $.Values.credentials.values .) }}
{{- fail (printf "credentials.values has no key %q, which the config refers to" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq .Values.rateLimit.backend "redis") (not (or .Values.rateLimit.redis.url .Values.rateLimit.redis.urlKey)) }}
{{- fail "rateLimit.backend redis needs rateLimit.redis.url or rateLimit.redis.urlKey" }}
{{- end }}
{{- range $name, $account := .Values.accounts }}
{{- if not (has $account.vendor (list "glance" "netsapiens" "clienttoolbox")) }}
{{- fail (printf "accounts.%s.vendor must be glance, netsapiens or clienttoolbox" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A TOML basic string: JSON string escapes are a subset of TOML's. */}}
{{- define "provisioner.tomlString" -}}
{{- toJson (toString .) }}
{{- end }}

{{/* A PromQL matcher list for the RabbitMQ series: the given matcher plus the extra selector. */}}
{{- define "provisioner.rabbitmqMatchers" -}}
{{- $extra := .root.Values.prometheusRule.rabbitmqSelector }}
{{- if $extra }}{{ printf "%s, %s" .matcher $extra }}{{ else }}{{ .matcher }}{{ end }}
{{- end }}

{{/* The most replicas the chart may run: what each replica divides the limits by while Redis is away. */}}
{{- define "provisioner.replicasHint" -}}
{{- if .Values.rateLimit.replicasHint }}{{ int .Values.rateLimit.replicasHint }}
{{- else if .Values.keda.enabled }}{{ int .Values.keda.maxReplicaCount }}
{{- else if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.maxReplicas }}
{{- else }}{{ int .Values.replicaCount }}
{{- end }}
{{- end }}
