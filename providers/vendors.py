"""OpenAI-compatible vendors as data rows (one adapter, `providers.openai.OpenAIProvider`,
serves them all).

A `VendorRow` says where a vendor lives (base URL, regions), how to authenticate
(bearer / Azure `api-key` header / none), which env var holds the key, what it can
do, which wire quirks it has, and how its structured error codes map onto our
error tree. Facts come from the project's provider-facts catalog (2026-11-29); each row's
`sources` names where a fact was checked.

Error kinds used in `error_codes` / `status_map` / `message_rules`:
"quota" QuotaExhausted, "rate" RateLimited, "context" ContextTooLong,
"content" ContentFiltered, "auth" AuthFailed, "bad" BadRequest,
"unavailable" Unavailable, "timeout" Timeout.

Quirk flags (request side changes behaviour; response side is parsed tolerantly for
every vendor, the flag documents who sends what):
  developer_role        keep role "developer" (else sent as "system")
  max_completion_tokens send `max_completion_tokens` for models in `max_completion_tokens_prefixes`
  azure_deployments     URL {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=
  no_stream_options     do not send stream_options (vendor rejects it)
  reasoning_content     reasoning text in (delta|message).reasoning_content
  prompt_cache_hit_tokens  usage.prompt_cache_hit_tokens / prompt_cache_miss_tokens (DeepSeek)
  choice_usage          stream usage inside choices[0].usage (Moonshot)
  x_groq_usage          stream usage inside x_groq.usage (Groq)
  base_resp_errors      errors inside HTTP 200 `base_resp` (MiniMax)
  mid_stream_errors     `{"error":{...}}` data event, finish_reason "error" (OpenRouter)
  sse_comments          keep-alive SSE comments (": OPENROUTER PROCESSING", ": keep-alive")
  thinking_stream_only  thinking only in streamed calls (DashScope: non-stream needs enable_thinking=false)

Parameters (translated by `providers.params`, never forwarded blindly):
  reasoning        how reasoning is set: "openai" (`reasoning_effort`), "thinking_type"
                   (`thinking: {type}` + `reasoning_effort` where the model has levels), "qwen"
                   (`enable_thinking` + `thinking_budget`), "openrouter" (`reasoning: {...}`),
                   "none" (no control: dropped with a note)
  efforts          (model prefix, levels) pairs, first match wins ("" = every model)
  reasoning_drops  sampling fields the vendor's reasoning models reject or ignore (dropped with a note)
  params           sampling knobs the vendor takes (others dropped with a note)
  json_mode        "json_schema" (native), "json_object" (+ the schema as an instruction), "none"

`prefill` says whether the vendor continues a trailing assistant message (used to
finish a stream another model left cut): None = it does not (OpenAI starts a new
turn); "" = it continues the message as sent; a key name = it continues when that
key is true on the message (DeepSeek `prefix`, which DeepSeek serves on its beta base
URL; Moonshot `partial`; Mistral `prefix`). A vendor that rejects the prefill fails
that attempt like any other error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from router import errors as E

if TYPE_CHECKING:  # keep `import providers.vendors` light: httpx/orjson/pydantic load on first error
    from providers._http import Call, ErrorInfo
    from router.types import Usage

__all__ = ["VendorRow", "VENDORS", "COMMON_ERROR_CODES", "COMMON_MESSAGE_RULES", "get_vendor", "ERROR_KINDS",
           "map_error", "embedded_error"]

ERROR_KINDS = frozenset({"quota", "rate", "context", "content", "auth", "bad", "unavailable", "timeout"})

_ALL = frozenset({"tools", "vision", "json_schema", "reasoning", "streaming"})
REASONING_STYLES = frozenset({"openai", "thinking_type", "qwen", "openrouter", "none"})
JSON_MODES = frozenset({"json_schema", "json_object", "none"})
# The OpenAI sampling knobs most compatible vendors take (verbosity, top_k: only where listed).
_KNOBS = frozenset({"seed", "frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls"})
_SAMPLING = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})
_OPENAI_EFFORTS = (  # gpt-5.2+: none..xhigh; gpt-5.1: none..high; gpt-5/-mini/-nano: minimal..high; o-series
    ("gpt-5.1", ("none", "low", "medium", "high")), ("gpt-5.", ("none", "low", "medium", "high", "xhigh")),
    ("gpt-5", ("minimal", "low", "medium", "high")), ("o", ("low", "medium", "high")))
_TEXT = frozenset({"tools", "streaming"})


def _ro(d: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class VendorRow:
    name: str
    title: str
    base_url: str | None  # None = must be given (Azure endpoint)
    env_var: str
    auth: str = "bearer"  # "bearer" | "api-key" | "none"
    key_required: bool = True
    capabilities: frozenset[str] = _TEXT
    regions: frozenset[str] = frozenset({"us"})
    quirks: frozenset[str] = frozenset()
    error_codes: Mapping[str, str] = field(default_factory=_ro)  # vendor code/type -> kind
    status_map: Mapping[int, str] = field(default_factory=_ro)  # vendor-specific status meaning
    message_rules: tuple[tuple[str, str], ...] = ()  # (lower-case substring, kind): last resort
    max_completion_tokens_prefixes: tuple[str, ...] = ()
    prefill: str | None = None  # see the module docstring
    default_headers: Mapping[str, str] = field(default_factory=_ro)
    reasoning: str = "none"  # see "Parameters" above
    efforts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    reasoning_drops: frozenset[str] = frozenset()
    params: frozenset[str] = _KNOBS
    json_mode: str = "json_schema"
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.reasoning not in REASONING_STYLES or self.json_mode not in JSON_MODES:
            raise ValueError(f"vendor row {self.name}: unknown reasoning style or json_mode")
        for k in (*self.error_codes.values(), *self.status_map.values(), *(r[1] for r in self.message_rules)):
            if k not in ERROR_KINDS:
                raise ValueError(f"vendor row {self.name}: unknown error kind {k!r}")


# OpenAI's codes/types, understood for every row unless the row overrides them.
# Source: openai-python _exceptions.py + community.openai.com/t/298219 (facts: openai.error_signatures).
COMMON_ERROR_CODES: Mapping[str, str] = _ro({
    "insufficient_quota": "quota",
    "credit_balance_exhausted": "quota",  # developersdigest.tech catalogue (facts: openai)
    "billing_hard_limit_reached": "quota",
    "rate_limit_exceeded": "rate",
    "context_length_exceeded": "context",
    "string_above_max_length": "context",
    "content_filter": "content",  # Azure prompt filter (facts: azure_openai)
    "content_policy_violation": "content",
    "invalid_api_key": "auth",
    "invalid_authentication_error": "auth",
    "authentication_error": "auth",
    "permission_denied_error": "auth",
    "model_not_found": "bad",
    "server_error": "unavailable",
    "overloaded_error": "unavailable",
})

# Last resort, used only when neither status nor structured code decided. Lower-case.
COMMON_MESSAGE_RULES: tuple[tuple[str, str], ...] = (
    ("maximum context length", "context"),  # OpenAI / DeepSeek / vLLM / OpenRouter wording
    ("context_length_exceeded", "context"),
    ("reduce the length of the messages", "context"),  # Groq
    ("prompt is too long", "context"),
)

_OPENAI_SRC = ("openai/openai-python _base_client.py, _exceptions.py; community.openai.com/t/298219",
               "platform.openai.com/docs/guides/reasoning (limitations: temperature, top_p, penalties, logit_bias, "
               "logprobs); developers.openai.com/api/docs/guides/latest-model (gpt-5.x effort levels, sampling "
               "only with effort none)")
_OPENAI_PARAMS = dict(reasoning="openai", efforts=_OPENAI_EFFORTS,
                      reasoning_drops=_SAMPLING | {"logit_bias"}, params=_KNOBS | {"verbosity"})

_ROWS: list[VendorRow] = [
    VendorRow(
        "openai", "OpenAI", "https://api.openai.com/v1", "OPENAI_API_KEY", capabilities=_ALL,
        quirks=frozenset({"developer_role", "max_completion_tokens"}),
        max_completion_tokens_prefixes=("o1", "o3", "o4", "gpt-5"), **_OPENAI_PARAMS, sources=_OPENAI_SRC),
    VendorRow(
        "azure", "Azure OpenAI", None, "AZURE_OPENAI_API_KEY", auth="api-key", capabilities=_ALL,
        regions=frozenset({"us", "eu"}),
        quirks=frozenset({"developer_role", "max_completion_tokens", "azure_deployments"}),
        max_completion_tokens_prefixes=("o1", "o3", "o4", "gpt-5"),
        error_codes=_ro({"content_filter": "content", "contentfilter": "content"}), **_OPENAI_PARAMS,
        sources=("openai-python lib/azure.py (api-key header, /openai/deployments/{model}, api-version)",
                 "learn.microsoft.com/answers/questions/2140040 (429 text)")),
    VendorRow(
        "deepseek", "DeepSeek", "https://api.deepseek.com", "DEEPSEEK_API_KEY",
        capabilities=frozenset({"tools", "json_schema", "reasoning", "streaming"}), regions=frozenset({"cn"}),
        quirks=frozenset({"reasoning_content", "prompt_cache_hit_tokens", "sse_comments"}), prefill="prefix",
        # 402 Insufficient Balance is quota by status; 503 Server Overloaded -> unavailable.
        message_rules=(("insufficient balance", "quota"),),
        reasoning="thinking_type", efforts=(("", ("low", "high", "max")),), reasoning_drops=_SAMPLING,
        params=frozenset({"frequency_penalty", "presence_penalty"}), json_mode="json_object",
        sources=("https://api-docs.deepseek.com/quick_start/error_codes",
                 "https://api-docs.deepseek.com/guides/thinking_mode (thinking type, reasoning_effort low/high/max, "
                 "sampling ignored while thinking)", "https://api-docs.deepseek.com/guides/json_mode")),
    VendorRow(
        "moonshot", "Moonshot AI (Kimi)", "https://api.moonshot.cn/v1", "MOONSHOT_API_KEY", capabilities=_ALL,
        regions=frozenset({"cn"}), quirks=frozenset({"choice_usage", "reasoning_content"}), prefill="partial",
        error_codes=_ro({
            "exceeded_current_quota_error": "quota",  # 429 (or 403): balance gone -- match on type
            "rate_limit_reached_error": "rate",
            "engine_overloaded_error": "rate",
            "invalid_authentication_error": "auth",
            "permission_denied_error": "auth",
            "resource_not_found_error": "bad",
        }),
        message_rules=(("exceeded model token limit", "context"),),
        reasoning="thinking_type", efforts=(("kimi-k3", ("low", "high", "max")),), reasoning_drops=_SAMPLING,
        json_mode="json_object",
        sources=("java.agentscope.io/v2/en/integration/model/kimi (thinking type disabled; kimi-k3 reasoning_effort "
                 "low/high/max; sampling fixed on kimi-* models)","https://forum.moonshot.ai/t/429-insufficient-balance/244",
                 "https://www.kimi.com/help/kimi-api/api-troubleshooting",
                 "github.com/higress-group/higress/pull/1568 (choices[0].usage in stream)")),
    VendorRow(
        "zhipu", "Zhipu AI (GLM)", "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY", capabilities=_ALL,
        regions=frozenset({"cn"}), quirks=frozenset({"reasoning_content"}),
        # https://docs.bigmodel.cn/cn/api/api-code (business code -> HTTP status)
        error_codes=_ro({
            "1000": "auth", "1001": "auth", "1002": "auth", "1003": "auth", "1004": "auth",
            "1113": "quota",  # 您的账户已欠费 (account in arrears), HTTP 429
            "1304": "quota",  # daily call quota for this API reached
            "1308": "quota", "1309": "quota", "1310": "quota",  # plan caps / plan expired
            "1261": "context",  # Prompt 超长
            "1301": "content",  # 系统检测到输入或生成内容可能包含不安全或敏感内容
            "1302": "rate", "1303": "rate", "1312": "rate",  # 并发数过高 / 频率过高
            "1305": "unavailable",  # 该模型当前访问量过大 (platform overload)
            "1211": "bad", "1214": "bad",  # model does not exist / invalid parameter
        }),
        reasoning="thinking_type", params=frozenset(), json_mode="json_object",
        sources=("https://docs.bigmodel.cn/cn/api/api-code", "https://docs.bigmodel.cn/cn/faq/api-code.md",
                 "https://docs.bigmodel.cn/cn/guide/capabilities/thinking-mode (thinking type enabled/disabled)",
                 "java.agentscope.io/v2/en/integration/model/glm (no penalties; response_format json_object only)")),
    VendorRow(
        "dashscope", "Alibaba DashScope (Qwen, compatible mode)",
        "https://dashscope.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY", capabilities=_ALL,
        regions=frozenset({"cn"}), quirks=frozenset({"reasoning_content", "thinking_stream_only"}),
        reasoning="qwen", params=frozenset({"seed", "presence_penalty", "top_k"}), json_mode="json_object",
        error_codes=_ro({
            "Arrearage": "quota",  # 400: "Access denied, please make sure your account is in good standing"
            "AllocationQuota.FreeTierOnly": "quota",
            "Throttling": "rate",  # Throttling.RateQuota / Throttling.AllocationQuota (prefix match)
            # Here "insufficient_quota"/"You exceeded your current quota" is the TPM limit, NOT
            # an empty balance (opposite of OpenAI) -> rate.
            "insufficient_quota": "rate",
            "DataInspectionFailed": "content",
            "data_inspection_failed": "content",
            "InvalidApiKey": "auth",
            "invalid_api_key": "auth",
        }),
        message_rules=(("range of input length should be", "context"),),
        sources=("https://help.aliyun.com/en/model-studio/error-code",
                 "https://www.alibabacloud.com/help/en/model-studio/deep-thinking (enable_thinking, thinking_budget; "
                 "open-source Qwen3 think only when streamed)",
                 "https://www.alibabacloud.com/help/en/model-studio/rate-limit")),
    VendorRow(
        "minimax", "MiniMax", "https://api.minimaxi.com/v1", "MINIMAX_API_KEY",
        capabilities=frozenset({"tools", "reasoning", "streaming"}), regions=frozenset({"cn"}),
        quirks=frozenset({"base_resp_errors"}),
        # https://platform.minimax.io/docs/api-reference/errorcode.md; 1026/1027/1039 unverified.
        error_codes=_ro({
            "1008": "quota",  # insufficient balance (may arrive with HTTP 200)
            "1002": "rate",  # rate limit
            "1004": "auth", "2049": "auth",
            "1001": "timeout",
            "1000": "unavailable", "1013": "unavailable",
            "1026": "content", "1027": "content",
            "1039": "context",
            "2013": "bad",
        }),
        sources=("https://platform.minimax.io/docs/api-reference/errorcode.md",)),
    VendorRow(
        "yi", "01.AI (Yi)", "https://api.lingyiwanwu.com/v1", "YI_API_KEY", regions=frozenset({"cn"}),
        sources=("lobehub/lobe-chat model-bank zeroone.ts",)),
    VendorRow(
        "stepfun", "StepFun", "https://api.stepfun.com/v1", "STEPFUN_API_KEY", capabilities=_ALL,
        regions=frozenset({"cn"}), status_map=_ro({451: "content"}),
        sources=("api-evangelist/stepfun errors/stepfun-error-codes.yml",)),
    VendorRow(
        "baichuan", "Baichuan", "https://api.baichuan-ai.com/v1", "BAICHUAN_API_KEY", regions=frozenset({"cn"}),
        sources=("lobehub/lobe-chat model-bank baichuan.ts",)),
    VendorRow(
        "qianfan", "Baidu Qianfan (v2)", "https://qianfan.baidubce.com/v2", "QIANFAN_API_KEY", capabilities=_ALL,
        regions=frozenset({"cn"}),
        error_codes=_ro({
            "rpm_rate_limit_exceeded": "rate", "tpm_rate_limit_exceeded": "rate",
            "336501": "rate", "336502": "rate",
            "BILLING_INSUFFICIENT_BALANCE": "quota",  # AppBuilder error page; unverified for /v2
            "tokens_too_long": "context", "characters_too_long": "context",
        }),
        sources=("https://cloud.baidu.com/doc/qianfan-api/s/rmwbl43x7",
                 "https://cloud.baidu.com/doc/WENXINWORKSHOP/s/cm79w0mjf")),
    VendorRow(
        "ark", "Volcengine Ark (Doubao)", "https://ark.cn-beijing.volces.com/api/v3", "ARK_API_KEY",
        capabilities=_ALL, regions=frozenset({"cn"}), quirks=frozenset({"reasoning_content"}),
        error_codes=_ro({
            "AccountOverdueError": "quota",  # 403: account has an overdue balance
            "OperationDenied": "quota",  # OperationDenied.ServiceOverdue (prefix)
            "ServiceOverdue": "quota",
            "SetLimitExceeded": "quota",  # user-set / safe-experience cap
            "RateLimitExceeded": "rate",  # .EndpointRPMExceeded / .EndpointTPMExceeded ...
            "ModelAccountRpmRateLimitExceeded": "rate", "ModelAccountTpmRateLimitExceeded": "rate",
            "APIAccountRpmRateLimitExceeded": "rate", "AccountRateLimitExceeded": "rate",
            "RequestBurstTooFast": "rate", "InflightBatchsizeExceeded": "rate",
            "ServerOverloaded": "unavailable",
            "AuthenticationError": "auth", "AccessDenied": "auth",
            "ModelNotOpen": "bad", "InvalidEndpointOrModel": "bad",
            "SensitiveContentDetected": "content",
            "InputTextSensitiveContentDetected": "content", "OutputTextSensitiveContentDetected": "content",
        }),
        reasoning="thinking_type", json_mode="json_object",
        sources=("https://volcengine.com/docs/82379/1299023",
                 "https://www.volcengine.com/docs/82379/1449737 (thinking type enabled/disabled/auto), as quoted by "
                 "www.compshare.cn/docs/modelverse/models/text_api/thinking/doubao")),
    VendorRow(
        "hunyuan", "Tencent Hunyuan", "https://api.hunyuan.cloud.tencent.com/v1", "HUNYUAN_API_KEY",
        capabilities=_ALL, regions=frozenset({"cn"}),
        sources=("https://cloud.tencent.com/document/product/1729/111007",)),
    VendorRow(
        "siliconflow", "SiliconFlow", "https://api.siliconflow.cn/v1", "SILICONFLOW_API_KEY", capabilities=_ALL,
        regions=frozenset({"cn"}), quirks=frozenset({"reasoning_content"}),
        error_codes=_ro({"30001": "quota"}),  # insufficient balance (community reports)
        reasoning="qwen", params=frozenset({"frequency_penalty", "top_k"}), json_mode="json_object",
        sources=("https://docs.siliconflow.cn/cn/userguide/rate-limits/rate-limit-and-upgradation.md",
                 "https://docs.siliconflow.cn/cn/api-reference/chat-completions/chat-completions (enable_thinking, "
                 "thinking_budget, top_k; unverified here)",
                 "github.com/AIDotNet/OpenDeepWiki/issues/269 (429 body)")),
    VendorRow(
        "groq", "Groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY",
        capabilities=frozenset({"tools", "json_schema", "reasoning", "streaming"}),
        quirks=frozenset({"x_groq_usage"}),
        # 413 "Request too large ... (TPM)" is ContextTooLong by status; per-day limits are a
        # quota until reset, per-minute ones a rate limit.
        message_rules=(("per day", "quota"),),
        reasoning="openai", efforts=(("openai/gpt-oss", ("low", "medium", "high")), ("qwen/qwen3", ("none", "default"))),
        params=frozenset({"seed", "parallel_tool_calls"}),
        sources=("https://console.groq.com/docs/rate-limits.md", "public code reading chunk.x_groq.usage",
                 "https://console.groq.com/docs/reasoning (reasoning_effort per model)")),
    VendorRow(
        "mistral", "Mistral AI", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", capabilities=_ALL,
        regions=frozenset({"eu"}), prefill="prefix",
        params=frozenset({"frequency_penalty", "presence_penalty", "parallel_tool_calls"}),  # seed is random_seed
        sources=("developersdigest.tech/errors/api/mistral-api",)),
    VendorRow(
        "together", "Together AI", "https://api.together.xyz/v1", "TOGETHER_API_KEY", capabilities=_ALL,
        message_rules=(("must be less than the context length", "context"),),  # documented as HTTP 403
        reasoning="openai", efforts=(("openai/gpt-oss", ("low", "medium", "high")),), params=_KNOBS | {"top_k"},
        sources=("https://docs.together.ai/docs/error-codes",)),
    VendorRow(
        "openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", capabilities=_ALL,
        quirks=frozenset({"mid_stream_errors", "sse_comments", "reasoning_content"}), prefill="",
        status_map=_ro({403: "content"}),  # 403 = input flagged by moderation
        message_rules=(("free-models-per-day", "quota"),),  # daily free quota, resets at UTC midnight
        reasoning="openrouter", params=_KNOBS | {"top_k", "verbosity"},
        sources=("https://openrouter.ai/docs/use-cases/reasoning-tokens (reasoning: effort | max_tokens | enabled)","https://openrouter.ai/docs/api/reference/errors-and-debugging",
                 "https://openrouter.ai/docs/api-reference/streaming")),
    VendorRow(
        "ollama", "Ollama (local)", "http://localhost:11434/v1", "OLLAMA_API_KEY", key_required=False,
        capabilities=_ALL, regions=frozenset({"local"}), quirks=frozenset({"reasoning_content"}), prefill="",
        reasoning="openai", efforts=(("", ("none", "low", "medium", "high", "max")),),
        params=frozenset({"seed", "frequency_penalty", "presence_penalty"}),
        sources=("ollama/ollama docs/api/openai-compatibility.mdx (reasoning_effort high/medium/low/max/none)",)),
    VendorRow(
        "vllm", "vLLM (self-hosted)", "http://localhost:8000/v1", "VLLM_API_KEY", key_required=False,
        capabilities=_ALL, regions=frozenset({"local"}), quirks=frozenset({"reasoning_content"}),
        reasoning="openai", efforts=(("", ("low", "medium", "high")),), params=_KNOBS | {"top_k"},
        sources=("vllm ErrorResponse (flat and nested forms)",)),
]

VENDORS: Mapping[str, VendorRow] = _ro({r.name: r for r in _ROWS})
_ALIASES = {"kimi": "moonshot", "glm": "zhipu", "zai": "zhipu", "qwen": "dashscope", "alibaba": "dashscope",
            "01ai": "yi", "zeroone": "yi", "baidu": "qianfan", "volcengine": "ark", "doubao": "ark",
            "tencent": "hunyuan", "azure_openai": "azure"}


def get_vendor(name: str) -> VendorRow:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return VENDORS[key]
    except KeyError:
        raise KeyError(f"unknown vendor {name!r}; known: {', '.join(sorted(VENDORS))}") from None


# ------------------------------------------------------------------ error mapping (the one place)
# Used by the OpenAI-compatible adapter (`providers.openai`) for HTTP errors, errors inside
# HTTP 200 bodies and mid-stream error chunks alike.

_KIND = {"quota": E.QuotaExhausted, "rate": E.RateLimited, "context": E.ContextTooLong,
         "content": E.ContentFiltered, "auth": E.AuthFailed, "bad": E.BadRequest,
         "unavailable": E.Unavailable, "timeout": E.Timeout}



def _code_kind(row: VendorRow, code: str | None) -> str | None:
    if not code:
        return None
    for table in (row.error_codes, COMMON_ERROR_CODES):
        if code in table:
            return table[code]
        head = code.split(".", 1)[0]  # Throttling.RateQuota -> Throttling
        if head != code and head in table:
            return table[head]
    return None


def map_error(row: VendorRow, info: ErrorInfo, *, call: Call, headers: Mapping[str, str] | None = None,
              now: float | None = None, billed_usage: Usage | None = None) -> E.ProviderError:
    """Status first, then vendor code/type, then (last resort) message rules."""
    from providers import _http  # lazy: import time (httpx); vendor rows load without the HTTP stack

    status = info.status
    kind = row.status_map.get(status) if status is not None else None
    cls: type[E.ProviderError] = _KIND[kind] if kind else _http.status_class(status)
    if status is not None and 200 <= status < 300:
        cls = E.Unavailable  # an error inside a 200 body: unknown code -> fall back, don't crash
    decided = None
    for c in (info.code, info.type):
        decided = _code_kind(row, c)
        if decided:
            cls = _KIND[decided]
            break
    if info.message and not (status is not None and status >= 500):
        # Last resort. Also used to refine an ambiguous "rate" code into "quota" when the
        # vendor words a daily window only in the message (Groq "tokens per day (TPD)").
        low = info.message.lower()
        for sub, k in (*row.message_rules, *COMMON_MESSAGE_RULES):
            if sub in low and (decided is None or (decided == "rate" and k == "quota")):
                cls = _KIND[k]
                break
    if info.type == "html":  # a proxy/load-balancer page: trust the status, never the page text
        if status is None or status >= 500 or status == 429:
            cls = E.Unavailable
        elif status < 400:
            cls = E.MalformedResponse
        else:
            cls = _http.status_class(status)
    return _http.make_error(cls, info, call=call, headers=headers, now=now, billed_usage=billed_usage)


def embedded_error(data: Any) -> ErrorInfo | None:
    """An error carried in a 200 body or stream chunk (OpenRouter `error`, MiniMax `base_resp`)."""
    import orjson  # lazy: import time, as above

    from providers import _http  # lazy: import time (httpx)

    if not isinstance(data, dict):
        return None
    err = data.get("error")
    br = data.get("base_resp")
    has_br = isinstance(br, dict) and br.get("status_code") not in (None, 0, "0")
    if not err and not has_br:
        return None
    info = _http.parse_error_body(orjson.dumps(data))
    status = None
    if isinstance(err, dict) and isinstance(err.get("code"), int) and 400 <= err["code"] < 600:
        status = err["code"]  # OpenRouter puts the HTTP-like status in error.code
    return _http.ErrorInfo(status=status if status is not None else 200, code=info.code, type=info.type,
                     message=info.message, raw=info.raw)
