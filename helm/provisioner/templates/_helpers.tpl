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
{{- if not .Values.intake.existingSecret }}
{{- range (include "provisioner.intakeKeys" . | fromJsonArray) }}{{ $keys = append $keys . }}{{ end }}
{{- end }}
{{- if not .Values.ledger.existingSecret }}
{{- range (include "provisioner.ledgerKeys" . | fromJsonArray) }}{{ $keys = append $keys . }}{{ end }}
{{- end }}
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
{{- fail (printf "secret keys %v are referenced (amqp.passwordKey, accounts.*.credentials, keda.hostSecretKey, intake and tenant intake keys, ledger.urlKey and ledger.passwordKey, rateLimit.redis.urlKey) but neither credentials.existingSecret nor credentials.values is set (nor intake.existingSecret, ledger.existingSecret)" $keys) }}
{{- end }}
{{- if and (not .Values.credentials.existingSecret) .Values.credentials.values }}
{{- range $keys }}
{{- if not (hasKey $.Values.credentials.values .) }}
{{- fail (printf "credentials.values has no key %q, which the config refers to" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.intake.enabled (not (include "provisioner.intakeKeys" . | fromJsonArray)) }}
{{- fail "intake.enabled needs a credential: intake.tokenKey, intake.hmacSecretKey, or a tenant's intakeTokenKey or intakeHmacSecretKey (the intake never runs without one)" }}
{{- end }}
{{- if and .Values.intake.ingress.enabled (not .Values.intake.enabled) }}
{{- fail "intake.ingress.enabled needs intake.enabled" }}
{{- end }}
{{- if and .Values.intake.ingress.enabled (not .Values.intake.ingress.host) }}
{{- fail "intake.ingress.enabled needs intake.ingress.host" }}
{{- end }}
{{- if and .Values.intake.enabled (eq (int .Values.intake.port) (int .Values.admin.port)) }}
{{- fail "intake.port must differ from admin.port" }}
{{- end }}
{{- include "provisioner.validateLedger" . }}
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

{{/* A TOML array of basic strings. */}}
{{- define "provisioner.tomlArray" -}}
{{- $items := list }}
{{- range . }}{{ $items = append $items (include "provisioner.tomlString" .) }}{{ end }}
{{- printf "[%s]" (join ", " $items) }}
{{- end }}

{{/* A tenant field rule: a template string, or an inline table of template, filters, optional, generate. */}}
{{- define "provisioner.fieldRule" -}}
{{- if kindIs "map" . }}
{{- $parts := list }}
{{- with .template }}{{ $parts = append $parts (printf "template = %s" (include "provisioner.tomlString" .)) }}{{ end }}
{{- with .filters }}{{ $parts = append $parts (printf "filters = %s" (include "provisioner.tomlArray" .)) }}{{ end }}
{{- if .optional }}{{ $parts = append $parts "optional = true" }}{{ end }}
{{- with .generate }}{{ $parts = append $parts (printf "generate = %s" (include "provisioner.tomlString" .)) }}{{ end }}
{{- printf "{ %s }" (join ", " $parts) }}
{{- else }}
{{- include "provisioner.tomlString" . }}
{{- end }}
{{- end }}

{{/* An intake secret as a config secret source: a file of the intake Secret's mount, or of
the credentials Secret's when intake.existingSecret is empty. Takes (dict "root" $ "key" KEY). */}}
{{- define "provisioner.intakeSecret" -}}
{{- $dir := .root.Values.credentials.mountPath }}
{{- if .root.Values.intake.existingSecret }}{{ $dir = .root.Values.intake.mountPath }}{{ end }}
{{- include "provisioner.tomlString" (printf "file:%s/%s" $dir .key) }}
{{- end }}

{{/* Every intake secret key: the global ones when the intake is on, and the tenants'. */}}
{{- define "provisioner.intakeKeys" -}}
{{- $keys := list }}
{{- if .Values.intake.enabled }}
{{- with .Values.intake.tokenKey }}{{ $keys = append $keys . }}{{ end }}
{{- with .Values.intake.hmacSecretKey }}{{ $keys = append $keys . }}{{ end }}
{{- end }}
{{- range $name, $t := .Values.tenants }}
{{- with $t.intakeTokenKey }}{{ $keys = append $keys . }}{{ end }}
{{- with $t.intakeHmacSecretKey }}{{ $keys = append $keys . }}{{ end }}
{{- end }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/* A PromQL matcher list for the RabbitMQ series: the given matcher plus the extra selector. */}}
{{- define "provisioner.rabbitmqMatchers" -}}
{{- $extra := .root.Values.prometheusRule.rabbitmqSelector }}
{{- if $extra }}{{ printf "%s, %s" .matcher $extra }}{{ else }}{{ .matcher }}{{ end }}
{{- end }}


{{/* The ledger Secret's keys the pod uses: the URL and the password, when the ledger is on. */}}
{{- define "provisioner.ledgerKeys" -}}
{{- $keys := list }}
{{- if .Values.ledger.enabled }}
{{- with .Values.ledger.urlKey }}{{ $keys = append $keys . }}{{ end }}
{{- with .Values.ledger.passwordKey }}{{ $keys = append $keys . }}{{ end }}
{{- end }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/* The Secret holding the ledger's keys: ledger.existingSecret, or the credentials Secret. */}}
{{- define "provisioner.ledgerSecretName" -}}
{{- .Values.ledger.existingSecret | default (include "provisioner.secretName" .) }}
{{- end }}

{{/* Where the ledger password file is: in ledger.mountPath when the ledger has a Secret of its
own, in the credentials Secret's mount otherwise. */}}
{{- define "provisioner.ledgerPasswordFile" -}}
{{- $dir := .Values.credentials.mountPath }}
{{- if .Values.ledger.existingSecret }}{{ $dir = .Values.ledger.mountPath }}{{ end }}
{{- printf "file:%s/%s" $dir .Values.ledger.passwordKey }}
{{- end }}

{{/* The SQLite file's path when the ledger is an SQLite file the chart can see (on, and its
URL not from a Secret); empty otherwise. `sqlite:PATH`, `sqlite://PATH`, with ?options. */}}
{{- define "provisioner.ledgerSqlitePath" -}}
{{- $l := .Values.ledger }}
{{- if and $l.enabled (not $l.urlKey) (hasPrefix "sqlite:" $l.url) }}
{{- $path := trimPrefix "sqlite:" $l.url }}
{{- if hasPrefix "//" $path }}{{ $path = trimPrefix "//" $path }}{{ end }}
{{- first (splitList "?" $path) }}
{{- end }}
{{- end }}

{{/* The ledger's rules: an SQLite file is absolute and for one replica; no password in a URL. */}}
{{- define "provisioner.validateLedger" -}}
{{- $l := .Values.ledger }}
{{- if $l.enabled }}
{{- $sqlite := include "provisioner.ledgerSqlitePath" . }}
{{- if and (not $l.urlKey) (hasPrefix "sqlite:" $l.url) }}
{{- if or (not (hasPrefix "/" $sqlite)) (contains "mode=memory" $l.url) }}
{{- fail (printf "ledger.url %q must name a file by its absolute path, e.g. sqlite:/var/lib/provisioner/ledger.sqlite: the root filesystem is read-only and the chart mounts a volume at the file's directory (an in-memory ledger is lost at every restart; set ledger.enabled=false instead)" $l.url) }}
{{- end }}
{{- $replicas := int .Values.replicaCount }}
{{- $what := "replicaCount" }}
{{- if .Values.keda.enabled }}
{{- $replicas = int .Values.keda.maxReplicaCount }}{{ $what = "keda.maxReplicaCount" }}
{{- else if .Values.autoscaling.enabled }}
{{- $replicas = int .Values.autoscaling.maxReplicas }}{{ $what = "autoscaling.maxReplicas" }}
{{- end }}
{{- if gt $replicas 1 }}
{{- fail (printf "ledger.url is SQLite (%s) but %s is %d: SQLite is one file for one replica; replicas share PostgreSQL (set ledger.url to postgres://user@host/db with ledger.passwordKey, or ledger.urlKey from a Secret), or run one replica" $l.url $what $replicas) }}
{{- end }}
{{- end }}
{{- if and (not $l.urlKey) (regexMatch "^postgres(ql)?://[^/@]*:[^/@]*@" $l.url) }}
{{- fail "ledger.url carries a password: leave it out of the URL and name the Secret key that holds it in ledger.passwordKey (values and ConfigMaps are not secret)" }}
{{- end }}
{{- if and $l.passwordKey (not $l.urlKey) (hasPrefix "sqlite:" $l.url) }}
{{- fail "ledger.passwordKey is set but ledger.url is SQLite, which takes no password" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The most replicas the chart may run: what each replica divides the limits by while Redis is away. */}}
{{- define "provisioner.replicasHint" -}}
{{- if .Values.rateLimit.replicasHint }}{{ int .Values.rateLimit.replicasHint }}
{{- else if .Values.keda.enabled }}{{ int .Values.keda.maxReplicaCount }}
{{- else if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.maxReplicas }}
{{- else }}{{ int .Values.replicaCount }}
{{- end }}
{{- end }}
