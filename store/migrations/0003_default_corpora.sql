-- The knowledge corpora the personas read. More can be added with `mentor corpus add`.
INSERT INTO corpora (name, description, public) VALUES
    ('curriculum', 'Lessons on business development, client communication, pricing, proposals and productivity', true),
    ('help_center', 'Platform help: fees, payments, escrow, milestones, withdrawals, disputes, account', true),
    ('market_data', 'Rate percentiles, demand and trend per skill and segment, as text', true),
    ('case_studies', 'Worked examples of client situations', true)
ON CONFLICT (name) DO NOTHING;
