// The workbench's words in English and Simplified Chinese. The server picks the default
// (Accept-Language, MARKET=cn → Chinese) into <html data-lang>; the header switch and the
// profile's language preference change it.
const EN = {
  app_name: "Atelier",
  skip: "Skip to content",
  language: "Language",
  nav_dashboard: "Dashboard", nav_create: "Create", nav_history: "History", nav_gallery: "Gallery",
  nav_buy: "Buy credits", nav_ledger: "Ledger", nav_orders: "Orders", nav_profile: "Profile",
  nav_admin: "Admin", logout: "Log out", loading: "Loading…", retry: "Retry",
  login_title: "Log in", signup_title: "Create your account", phone_title: "Log in with your phone",
  email: "Email", password: "Password", name: "Name", phone: "Phone number", sms_code: "Code from the SMS",
  login: "Log in", signup: "Sign up", send_code: "Send the code", verify: "Log in",
  code_sent: "Code sent. It is valid for 5 minutes.",
  have_account: "Already have an account? Log in", no_account: "New here? Create an account",
  use_phone: "Log in with phone and SMS code", use_email: "Log in with email and password",
  signup_bonus: "New accounts get free credits to try it out.",
  password_hint: "At least 8 characters.",
  session_expired: "Please log in again.",
  dashboard: "Dashboard", available: "Available credits", held: "Held for running tasks",
  membership: "Membership", no_membership: "No membership yet.", plan: "Plan",
  quota_left: "{left} of {total} left", period_end: "Period ends {date}", renew: "Renew",
  get_membership: "Get a membership", buy_credits: "Buy credits",
  grants: "Your credits by grant", grants_admin: "Credits by grant", no_grants: "No credits right now — buy a pack or a membership.",
  src_signup_bonus: "Sign-up bonus", src_pack: "Credit pack", src_membership: "Membership",
  src_admin: "Adjustment", src_grace: "Returned (grace)",
  source: "Source", remaining: "Remaining", expires: "Expires", never: "never",
  stats: "Your activity", credits_per_month: "Credits spent per month", tasks_by_type: "Tasks by type",
  no_stats: "No tasks yet — create one.", total_tasks: "Tasks", succeeded: "Succeeded", failed_n: "Failed",
  total_images: "Images", credits_spent: "Credits spent",
  buy_now: "Buy", subscribe: "Become a member",
  buy: "Buy credits", catalog: "Catalog", pack: "Credit pack", membership_kind: "Membership",
  credits_n: "{n} credits", per_days: "every {n} days", pay_with: "Pay with",
  ch_local: "Sandbox checkout", ch_stripe: "Card (Stripe)", ch_wechatpay: "WeChat Pay",
  item: "Item", order: "Order", orders: "Orders", status: "Status", amount: "Amount", channel: "Channel",
  created: "Created", no_orders: "No orders yet — buy credits or a membership.",
  st_pending: "pending", st_paid: "paid", st_failed: "failed", st_expired: "expired", st_refunded: "refunded",
  st_processing: "processing", st_succeeded: "succeeded", st_cancelled: "cancelled",
  order_pending: "Waiting for the payment. This page updates by itself.",
  order_paid: "Paid. The credits are in your account.",
  order_failed: "The payment failed. Nothing was charged.",
  order_expired: "This order expired before it was paid.",
  order_refunded: "This order was refunded.",
  to_checkout: "Go to the checkout", scan_qr: "Scan with WeChat to pay", i_have_paid: "I have paid",
  checked: "Checked with the payment provider.",
  create: "Create", task_type: "Type",
  type_text_to_image: "Text to image", type_basic_clean: "Clean product photo",
  type_model_pose12: "Model in 12 poses",
  prompt: "Prompt", negative_prompt: "Negative prompt (optional)", width: "Width", height: "Height",
  seed: "Seed (optional)", scene: "Scene", category: "Category",
  scene_street: "street", scene_studio: "studio", scene_indoor: "indoor",
  cat_shoes: "shoes", cat_dress: "dress", cat_hoodie: "hoodie", cat_coat: "coat",
  photo: "Photo", drop_here: "Drop a photo here, or choose one", choose_file: "Choose a photo",
  uploading: "Uploading…", uploaded: "Uploaded", upload_failed: "The upload failed: {why}",
  photo_needed: "Upload a photo first.",
  cost_note: "Cost: {n} credits — what your last task of this type cost. The API states a task's cost once the task exists; no endpoint tells it before.",
  cost_unknown: "The cost is set by the service: the API states it on the task once the task exists (no endpoint tells it before). If your credits are not enough, nothing is created.",
  you_have: "You have {n} credits available.",
  sandbox_fail: "Sandbox: make this task fail (sandbox_outcome, local market only)",
  submit: "Create", submitting: "Creating…",
  not_enough: "Not enough credits for this task.", buy_link: "Buy credits or a membership",
  content_rejected: "The content review refused this. Nothing was created or charged.",
  task: "Task", progress: "Progress", results: "Results", download: "Download",
  download_all: "Download all (zip)", cancel: "Cancel", run_again: "Run again",
  failed_reason: "The task failed: {why}", credits_returned: "Credits returned to your balance: {n}.",
  cancelled_returned: "Cancelled. Credits returned to your balance: {n}.",
  cost: "Cost", params: "Parameters", live: "Live", reconnecting: "Connection lost, reconnecting…",
  no_results: "No images.",
  history: "History", all: "All", type: "Type", filter: "Filter", next_page: "Next page", first_page: "First page",
  no_tasks: "No tasks yet — create one.", open: "Open",
  gallery: "Gallery", no_images: "No images yet — create a task.", close: "Close",
  ledger: "Ledger", kind: "Kind", balance_after: "Balance after", reference: "Reference", when: "When",
  no_ledger: "No movements yet.",
  k_grant: "grant", k_hold: "hold", k_capture: "capture", k_release: "release", k_expire: "expire", k_adjust: "adjust",
  profile: "Profile", avatar_url: "Avatar URL", pref_language: "Language preference", save: "Save", saved: "Saved.",
  lang_auto: "Follow the browser",
  admin: "Admin console", search_users: "Search users", search: "Search", query_hint: "Part of an email, name or phone",
  no_users: "No users found.", user: "User", role: "Role", timeline: "Timeline", no_timeline: "Nothing yet.",
  adjust_credits: "Adjust credits", reason: "Reason", adjust: "Adjust", adjusted: "Credits adjusted.",
  k_payment: "payment", k_refund: "refund", caused_by: "Caused by",
  cause_task: "task", cause_order: "order", cause_signup: "sign-up bonus", cause_admin: "administrator",
  refund: "Refund", refunded_ok: "Refund requested.", all_tasks: "All tasks", all_tasks_of_user: "All of this user's tasks", owner: "Owner",
  recent_orders: "Recent orders", recent_tasks: "Recent tasks", balance: "Balance",
  moderation: "Moderation", k_moderation: "moderation", verdict: "Verdict", verdict_rejected: "Rejected",
  st_rejected: "rejected", st_allowed: "allowed", no_decisions: "No moderation decisions.",
  subject: "Subject", subj_prompt: "Prompt", subj_input_image: "Input photo", subj_result_image: "Result",
  labels: "Labels", provider: "Provider", request_id: "Request ID", state: "State",
  overturn: "Overturn", overturn_ask: "Overturn this rejection? A failed task is re-run at no charge.",
  overturn_yes: "Yes, overturn", keep: "Keep",
  overturned_at: "Overturned {when}", rerun: "re-run task",
  not_found: "Not found.", error: "Something went wrong: {why}",
  offline: "The service cannot be reached. Check your connection and retry.",
  forbidden: "This page is for administrators.",
  api_docs: "API documentation",
};

const ZH = {
  app_name: "Atelier 图像工坊",
  skip: "跳到正文",
  language: "语言",
  nav_dashboard: "概览", nav_create: "创作", nav_history: "历史", nav_gallery: "图库",
  nav_buy: "购买积分", nav_ledger: "积分明细", nav_orders: "订单", nav_profile: "个人资料",
  nav_admin: "管理后台", logout: "退出登录", loading: "加载中…", retry: "重试",
  login_title: "登录", signup_title: "创建账户", phone_title: "手机号登录",
  email: "邮箱", password: "密码", name: "姓名", phone: "手机号", sms_code: "短信验证码",
  login: "登录", signup: "注册", send_code: "发送验证码", verify: "登录",
  code_sent: "验证码已发送，5 分钟内有效。",
  have_account: "已有账户？登录", no_account: "第一次来？创建账户",
  use_phone: "使用手机号和验证码登录", use_email: "使用邮箱和密码登录",
  signup_bonus: "新账户赠送免费积分，可先试用。",
  password_hint: "至少 8 个字符。",
  session_expired: "请重新登录。",
  dashboard: "概览", available: "可用积分", held: "任务占用中",
  membership: "会员", no_membership: "尚未开通会员。", plan: "套餐",
  quota_left: "剩余 {left} / 共 {total}", period_end: "本期截止 {date}", renew: "续费",
  get_membership: "开通会员", buy_credits: "购买积分",
  grants: "积分来源", grants_admin: "积分来源", no_grants: "暂无积分——请购买积分包或开通会员。",
  src_signup_bonus: "注册赠送", src_pack: "积分包", src_membership: "会员",
  src_admin: "人工调整", src_grace: "退还（宽限期）",
  source: "来源", remaining: "剩余", expires: "到期", never: "永不",
  stats: "使用统计", credits_per_month: "每月消耗积分", tasks_by_type: "各类型任务数",
  no_stats: "还没有任务——去创作一个吧。", total_tasks: "任务", succeeded: "成功", failed_n: "失败",
  total_images: "图片", credits_spent: "已消耗积分",
  buy_now: "购买", subscribe: "开通会员",
  buy: "购买积分", catalog: "商品", pack: "积分包", membership_kind: "会员",
  credits_n: "{n} 积分", per_days: "每 {n} 天", pay_with: "支付方式",
  ch_local: "沙盒支付", ch_stripe: "银行卡（Stripe）", ch_wechatpay: "微信支付",
  item: "商品", order: "订单", orders: "订单", status: "状态", amount: "金额", channel: "渠道",
  created: "创建时间", no_orders: "还没有订单——去购买积分或会员吧。",
  st_pending: "待支付", st_paid: "已支付", st_failed: "失败", st_expired: "已过期", st_refunded: "已退款",
  st_processing: "处理中", st_succeeded: "成功", st_cancelled: "已取消",
  order_pending: "等待支付，本页会自动更新。",
  order_paid: "已支付，积分已到账。",
  order_failed: "支付失败，未扣款。",
  order_expired: "订单在支付前已过期。",
  order_refunded: "该订单已退款。",
  to_checkout: "前往支付", scan_qr: "请用微信扫码支付", i_have_paid: "我已支付",
  checked: "已向支付渠道查询。",
  create: "创作", task_type: "类型",
  type_text_to_image: "文生图", type_basic_clean: "商品图清理",
  type_model_pose12: "模特 12 姿势",
  prompt: "提示词", negative_prompt: "反向提示词（可选）", width: "宽度", height: "高度",
  seed: "随机种子（可选）", scene: "场景", category: "品类",
  scene_street: "街拍", scene_studio: "影棚", scene_indoor: "室内",
  cat_shoes: "鞋", cat_dress: "连衣裙", cat_hoodie: "卫衣", cat_coat: "外套",
  photo: "照片", drop_here: "把照片拖到这里，或选择文件", choose_file: "选择照片",
  uploading: "上传中…", uploaded: "已上传", upload_failed: "上传失败：{why}",
  photo_needed: "请先上传照片。",
  cost_note: "费用：{n} 积分——你上一个同类型任务的费用。任务创建后会注明实际费用，API 没有可提前查询费用的接口。",
  cost_unknown: "费用由服务端设定：任务创建后会注明（API 没有可提前查询费用的接口）。积分不足时不会创建任务。",
  you_have: "你有 {n} 积分可用。",
  sandbox_fail: "沙盒：让该任务失败（sandbox_outcome，仅本地市场）",
  submit: "开始创作", submitting: "创建中…",
  not_enough: "积分不足，无法创建该任务。", buy_link: "购买积分或开通会员",
  content_rejected: "内容未通过审核，未创建任务，也未扣除积分。",
  task: "任务", progress: "进度", results: "结果", download: "下载",
  download_all: "全部下载（zip）", cancel: "取消", run_again: "再来一次",
  failed_reason: "任务失败：{why}", credits_returned: "已退还 {n} 积分。",
  cancelled_returned: "已取消，已退还 {n} 积分。",
  cost: "费用", params: "参数", live: "实时", reconnecting: "连接中断，正在重连…",
  no_results: "没有图片。",
  history: "历史", all: "全部", type: "类型", filter: "筛选", next_page: "下一页", first_page: "第一页",
  no_tasks: "还没有任务——去创作一个吧。", open: "查看",
  gallery: "图库", no_images: "还没有图片——去创作吧。", close: "关闭",
  ledger: "积分明细", kind: "类型", balance_after: "变动后余额", reference: "关联", when: "时间",
  no_ledger: "暂无积分变动。",
  k_grant: "发放", k_hold: "冻结", k_capture: "扣除", k_release: "退还", k_expire: "过期", k_adjust: "调整",
  profile: "个人资料", avatar_url: "头像链接", pref_language: "界面语言", save: "保存", saved: "已保存。",
  lang_auto: "跟随浏览器",
  admin: "管理后台", search_users: "搜索用户", search: "搜索", query_hint: "邮箱、姓名或手机号的一部分",
  no_users: "没有找到用户。", user: "用户", role: "角色", timeline: "时间线", no_timeline: "暂无记录。",
  adjust_credits: "调整积分", reason: "原因", adjust: "调整", adjusted: "积分已调整。",
  k_payment: "支付", k_refund: "退款", caused_by: "起因",
  cause_task: "任务", cause_order: "订单", cause_signup: "注册赠送", cause_admin: "管理员",
  refund: "退款", refunded_ok: "已发起退款。", all_tasks: "全部任务", all_tasks_of_user: "该用户的全部任务", owner: "所属用户",
  recent_orders: "最近订单", recent_tasks: "最近任务", balance: "余额",
  moderation: "内容审核", k_moderation: "内容审核", verdict: "审核结果", verdict_rejected: "未通过",
  st_rejected: "未通过", st_allowed: "通过", no_decisions: "暂无审核记录。",
  subject: "审核对象", subj_prompt: "提示词", subj_input_image: "输入照片", subj_result_image: "生成结果",
  labels: "标签", provider: "审核服务", request_id: "请求 ID", state: "状态",
  overturn: "撤销拒绝", overturn_ask: "确定撤销该拒绝？失败的任务将免费重新运行。",
  overturn_yes: "确定撤销", keep: "保留",
  overturned_at: "已于 {when} 撤销", rerun: "重新运行的任务",
  not_found: "未找到。", error: "出错了：{why}",
  offline: "无法连接服务，请检查网络后重试。",
  forbidden: "此页面仅限管理员。",
  api_docs: "API 文档",
};

const WORDS = { en: EN, zh: ZH };
let current = "en";

export function setLanguage(lang) {
  current = lang === "zh" ? "zh" : "en";
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
}

export function language() {
  return current;
}

export function t(key, vars) {
  let text = WORDS[current][key] ?? EN[key] ?? key;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function locale() {
  return current === "zh" ? "zh-CN" : "en";
}

export function formatDate(value) {
  if (!value) return "—";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "—" : d.toLocaleString(locale(), { dateStyle: "medium", timeStyle: "short" });
}

const ZERO_DECIMAL = new Set(["JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"]);

export function formatMoney(amount, currency) {
  const code = String(currency || "").toUpperCase();
  const value = ZERO_DECIMAL.has(code) ? amount : amount / 100;
  try {
    return new Intl.NumberFormat(locale(), { style: "currency", currency: code }).format(value);
  } catch {
    return `${value} ${code}`;
  }
}
