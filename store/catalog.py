"""Reference data for the demo dataset: skills by category with a typical median hourly rate (USD),
subscription plans and fees. The help-center articles in corpus/help_center quote these numbers."""

from __future__ import annotations

# category -> (median intermediate hourly rate, [skills])
SKILL_CATALOG: dict[str, tuple[int, list[str]]] = {
    "Web Development": (65, [
        "React", "TypeScript", "JavaScript", "Node.js", "Next.js", "Vue.js", "Angular", "Svelte",
        "HTML & CSS", "Tailwind CSS", "Django", "Flask", "FastAPI", "Ruby on Rails", "Laravel", "PHP",
        "WordPress", "Shopify", "Webflow", "GraphQL", "REST API Design", "Go",
    ]),
    "Mobile Development": (70, [
        "React Native", "Flutter", "Swift", "SwiftUI", "Kotlin", "Android Development", "iOS Development",
        "Ionic", "Mobile App Testing", "App Store Optimization",
    ]),
    "Design": (60, [
        "Figma", "UI Design", "UX Research", "Brand Identity", "Logo Design", "Illustration", "Adobe Photoshop",
        "Adobe Illustrator", "Motion Graphics", "Web Design", "Design Systems", "Packaging Design",
        "Presentation Design", "Product Design", "Wireframing", "Prototyping",
    ]),
    "Data & AI": (85, [
        "Python", "Data Analysis", "SQL", "Machine Learning", "Deep Learning", "Data Visualization",
        "Power BI", "Tableau", "Excel Modeling", "Natural Language Processing", "Computer Vision",
        "Data Engineering", "Apache Spark", "LLM Application Development", "Prompt Engineering", "Statistics",
    ]),
    "DevOps & Cloud": (90, [
        "AWS", "Google Cloud", "Azure", "Docker", "Kubernetes", "Terraform", "CI/CD", "Linux Administration",
        "PostgreSQL", "MongoDB", "Site Reliability Engineering", "Cybersecurity", "Penetration Testing",
    ]),
    "Writing & Content": (45, [
        "Copywriting", "Content Writing", "Technical Writing", "Blog Writing", "Ghostwriting", "Editing",
        "Proofreading", "UX Writing", "Grant Writing", "Resume Writing", "Translation (Spanish)",
        "Translation (German)", "Scriptwriting",
    ]),
    "Marketing": (55, [
        "SEO", "Google Ads", "Facebook Ads", "Email Marketing", "Social Media Marketing", "Content Strategy",
        "Marketing Analytics", "Conversion Rate Optimization", "Influencer Marketing", "Affiliate Marketing",
        "Marketing Automation", "Public Relations",
    ]),
    "Video & Audio": (50, [
        "Video Editing", "Adobe Premiere Pro", "After Effects", "Animation", "3D Modeling", "Blender",
        "Voice Over", "Podcast Editing", "Audio Mixing", "Music Production", "YouTube Production",
    ]),
    "Business & Finance": (70, [
        "Bookkeeping", "Financial Modeling", "Accounting", "Tax Preparation", "Business Plans",
        "Market Research", "Project Management", "Product Management", "Business Analysis", "Agile Coaching",
        "Pitch Decks", "Fractional CFO",
    ]),
    "Admin & Support": (28, [
        "Virtual Assistance", "Data Entry", "Customer Support", "Lead Generation", "CRM Management",
        "Transcription", "Email Management", "Calendar Management", "Research Assistance", "Zendesk",
    ]),
    "Sales & Consulting": (75, [
        "Sales Strategy", "B2B Sales", "Cold Outreach", "HubSpot", "Salesforce", "Business Consulting",
        "Startup Consulting", "E-commerce Consulting", "HR Consulting", "Recruiting",
    ]),
    "Engineering & Hardware": (80, [
        "CAD Design", "AutoCAD", "SolidWorks", "Embedded Systems", "Arduino", "PCB Design", "IoT Development",
        "Blockchain Development", "Solidity", "Game Development", "Unity", "Unreal Engine",
    ]),
}

SEGMENTS: dict[str, float] = {"entry": 0.55, "intermediate": 1.0, "expert": 1.7}

# id, name, monthly price, commission rate, proposals per month (None = unlimited), description
PLANS: list[tuple[str, str, float, float, int | None, str]] = [
    ("free", "Free", 0.00, 0.10, 15, "10% commission on earnings, 15 proposals a month"),
    ("plus", "Plus", 14.99, 0.08, 60, "8% commission on earnings, 60 proposals a month, earnings insights"),
    ("pro", "Pro", 39.99, 0.05, None, "5% commission on earnings, unlimited proposals, priority support"),
]

CLIENT_FEE_RATE = 0.03  # clients pay a 3% marketplace fee on every payment they fund

INDUSTRIES = [
    "E-commerce", "SaaS", "Healthcare", "Education", "Finance", "Real Estate", "Hospitality", "Nonprofit",
    "Media", "Manufacturing", "Logistics", "Legal", "Fitness", "Travel", "Gaming", "Agriculture",
]
COUNTRIES = [
    "United States", "United Kingdom", "Canada", "Germany", "Spain", "Brazil", "India", "Philippines",
    "Nigeria", "Poland", "Ukraine", "Mexico", "Australia", "Netherlands", "Kenya", "Argentina",
]
FIRST_NAMES = [
    "Alex", "Priya", "Jonas", "Amara", "Liam", "Chen", "Fatima", "Diego", "Hannah", "Kwame", "Elena", "Ravi",
    "Zoe", "Tomasz", "Aisha", "Lucas", "Mei", "Omar", "Ingrid", "Samuel", "Yuki", "Carmen", "Ethan", "Nadia",
    "Felix", "Grace", "Ibrahim", "Julia", "Kofi", "Lena", "Marco", "Noor", "Oscar", "Paula", "Quinn", "Rosa",
]
LAST_NAMES = [
    "Novak", "Okafor", "Silva", "Schmidt", "Patel", "Kowalski", "Garcia", "Nguyen", "Haddad", "Johansson",
    "Mensah", "Rossi", "Tanaka", "Fernandez", "Ibrahim", "Murphy", "Kim", "Dubois", "Petrov", "Adeyemi",
    "Costa", "Larsen", "Moreno", "Chowdhury", "Bauer", "Yilmaz", "Santos", "Walsh", "Ahmed", "Lopez",
]
COMPANY_WORDS = [
    "North", "Blue", "Bright", "Summit", "Harbor", "Cedar", "Atlas", "Nimbus", "Copper", "Maple", "Orbit",
    "Lumen", "Pioneer", "Willow", "Vertex", "Coral", "Granite", "Aurora", "Falcon", "Meadow",
]
COMPANY_SUFFIX = ["Labs", "Studio", "Co.", "Group", "Digital", "Health", "Works", "Ventures", "Goods", "Partners"]

PROJECT_TEMPLATES = [
    "Build a {skill} dashboard for our {industry} team",
    "{skill} expert needed to improve our customer onboarding",
    "Redesign and rebuild our marketing site ({skill})",
    "Ongoing {skill} support for a growing {industry} startup",
    "Short {skill} audit and recommendations",
    "{skill} specialist for a product launch in {month}",
    "Migrate our legacy system using {skill}",
    "Create a {skill} MVP for an investor demo",
    "Fix performance problems in our {skill} codebase",
    "{skill} help with a customer-facing portal",
]

# Repository folder holding the shipped Markdown corpora (curriculum, help center).
from pathlib import Path  # noqa: E402

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
