"""The upload stage: from a queued clip to the service's acceptance.

`uploader` is the stage, `guardrails` the schedules and budgets checked first, `api` the
client of the security API (`body` its streamed multipart body, `envelope` and `api_codes`
how its answers are read), `persons` the reference persons sent with each upload.
"""
