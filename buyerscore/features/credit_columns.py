"""Descriptions (English and Chinese) of the credit applicant tables' columns.

Importing this module registers them in :mod:`buyerscore.features.registry`, so reason
codes of the credit models read as sentences rather than column names.

>>> from buyerscore.features.registry import describe
>>> describe("NumberOfTimes90DaysLate")
'Times 90+ days late'
"""

from __future__ import annotations

from buyerscore.features.registry import FeatureSpec, register

_SPECS: list[tuple[str, str, str, str]] = [
    # Give Me Some Credit
    ("RevolvingUtilizationOfUnsecuredLines", "Utilisation of unsecured revolving credit lines", "ratio",
     "无担保循环信用额度使用率"),
    ("age", "Age of the borrower", "years", "借款人年龄"),
    ("NumberOfTime30-59DaysPastDueNotWorse", "Times 30-59 days past due (last 2 years)", "count",
     "过去两年逾期30-59天的次数"),
    ("DebtRatio", "Monthly debt payments to monthly income", "ratio", "月债务支出与月收入之比"),
    ("MonthlyIncome", "Monthly income", "USD", "月收入"),
    ("NumberOfOpenCreditLinesAndLoans", "Open loans and credit lines", "count", "未结清的贷款和信用额度数"),
    ("NumberOfTimes90DaysLate", "Times 90+ days late", "count", "逾期90天以上的次数"),
    ("NumberRealEstateLoansOrLines", "Real-estate loans and lines", "count", "房地产贷款及额度数"),
    ("NumberOfTime60-89DaysPastDueNotWorse", "Times 60-89 days past due (last 2 years)", "count",
     "过去两年逾期60-89天的次数"),
    ("NumberOfDependents", "Number of dependents", "count", "受抚养人数"),
    # engineered GMSC ratios (buyerscore.models.credit.features)
    ("TotalPastDue", "Total past-due episodes (30-59, 60-89 and 90+ days)", "count", "逾期总次数（30-59、60-89、90天以上）"),
    ("MonthlyDebt", "Monthly debt payments", "USD", "月债务支出"),
    ("IncomePerPerson", "Monthly income per household member", "USD", "家庭人均月收入"),
    ("RevolvingLinesShare", "Share of credit lines that are not real-estate loans", "ratio", "非房地产信用额度占比"),
    ("UtilisedLines", "Revolving utilisation (capped at 200 %) times the number of open credit lines", "count",
     "循环额度使用率（上限200%）乘以未结信用额度数"),
    ("IncomeMissing", "Monthly income not reported", "flag", "未申报月收入"),
    # Taiwan default of credit card clients
    ("LIMIT_BAL", "Credit limit", "NT$", "信用额度"),
    ("SEX", "Sex", "code", "性别"),
    ("EDUCATION", "Education level", "code", "教育程度"),
    ("MARRIAGE", "Marital status", "code", "婚姻状况"),
    ("AGE", "Age", "years", "年龄"),
    ("PAY_0", "Repayment status last month (months of delay)", "months", "上月还款状态（逾期月数）"),
    ("PAY_2", "Repayment status 2 months ago", "months", "两个月前还款状态"),
    ("PAY_3", "Repayment status 3 months ago", "months", "三个月前还款状态"),
    ("PAY_4", "Repayment status 4 months ago", "months", "四个月前还款状态"),
    ("PAY_5", "Repayment status 5 months ago", "months", "五个月前还款状态"),
    ("PAY_6", "Repayment status 6 months ago", "months", "六个月前还款状态"),
    *[(f"BILL_AMT{i}", f"Bill amount {i} month(s) ago", "NT$", f"{i}个月前账单金额") for i in range(1, 7)],
    *[(f"PAY_AMT{i}", f"Amount paid {i} month(s) ago", "NT$", f"{i}个月前还款金额") for i in range(1, 7)],
    ("PAY_MAX", "Worst repayment delay over 6 months", "months", "近6个月最长逾期月数"),
    ("PAY_RATIO_1", "Last payment to last bill", "ratio", "最近一期还款额与账单额之比"),
    ("UTIL_1", "Last bill to credit limit", "ratio", "最近一期账单额与信用额度之比"),
    ("PAY_MEAN", "Average repayment status over 6 months", "months", "近6个月平均还款状态"),
    ("N_DELAY", "Months with a repayment delay (of 6)", "count", "近6个月中逾期的月数"),
    ("UTIL_MEAN", "Average bill to credit limit over 6 months", "ratio", "近6个月平均账单额与信用额度之比"),
    ("PAY_TO_BILL_6M", "Payments to bills over 6 months", "ratio", "近6个月还款总额与账单总额之比"),
    ("BILL_TREND", "Change of the bill over 6 months, relative to the limit", "ratio", "近6个月账单变化（相对信用额度）"),
    *[(f"PAYR_{i}", f"Payment {i} month(s) ago to the bill it paid", "ratio", f"{i}个月前还款额与对应账单之比")
      for i in range(1, 6)],
    # German credit (Statlog)
    ("status_of_existing_checking_account", "Status of the checking account", "category", "支票账户状态"),
    ("duration_in_month", "Loan duration", "months", "贷款期限"),
    ("credit_history", "Credit history", "category", "信用记录"),
    ("purpose", "Purpose of the loan", "category", "贷款用途"),
    ("credit_amount", "Credit amount", "DM", "贷款金额"),
    ("savings_account_and_bonds", "Savings account and bonds", "category", "储蓄账户及债券"),
    ("present_employment_since", "Present employment since", "category", "当前工作年限"),
    ("installment_rate_in_percentage_of_disposable_income", "Instalment rate as % of disposable income", "%",
     "分期付款额占可支配收入比例"),
    ("personal_status_and_sex", "Personal status and sex", "category", "个人状况与性别"),
    ("other_debtors_or_guarantors", "Other debtors or guarantors", "category", "其他债务人或担保人"),
    ("present_residence_since", "Present residence since", "years", "现居住年限"),
    ("property", "Property", "category", "财产"),
    ("age_in_years", "Age", "years", "年龄"),
    ("other_installment_plans", "Other instalment plans", "category", "其他分期计划"),
    ("housing", "Housing", "category", "住房情况"),
    ("number_of_existing_credits_at_this_bank", "Existing credits at this bank", "count", "在本行现有贷款笔数"),
    ("job", "Job", "category", "职业"),
    ("number_of_people_being_liable_to_provide_maintenance_for", "People the applicant supports", "count",
     "需抚养人数"),
    ("telephone", "Telephone registered", "category", "是否登记电话"),
    ("foreign_worker", "Foreign worker", "category", "是否外籍工人"),
]

for _name, _en, _unit, _zh in _SPECS:
    register(FeatureSpec(_name, _en, _unit, _zh))

CREDIT_COLUMNS: tuple[str, ...] = tuple(s[0] for s in _SPECS)
